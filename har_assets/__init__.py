"""har-assets: wearable-sensor recordings to a served activity-recognition model, as Dagster assets."""
