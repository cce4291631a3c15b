"""The Dagster layer: a thin shell of assets, checks, sensors and resources over the pure code."""
