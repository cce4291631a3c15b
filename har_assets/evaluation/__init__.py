"""`har evaluate`: leave-participants-out cross-validation of a labelled cohort, tracked in MLflow."""
