"""Serving the registered model: one Predictor shared by the HTTP API and the batch scoring assets (no Dagster)."""
