"""The model's use, below both the HTTP app (`serving/`) and the assets (`orchestration/`): the registered model's
names, loading and verifying a version, following the champion, predicting recordings and windows, drift and
timelines. Free of Dagster and of the web framework."""
