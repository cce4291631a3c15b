"""Signal processing from raw samples to model-ready windows (no Dagster)."""
