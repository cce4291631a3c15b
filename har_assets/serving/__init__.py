"""The HTTP app: a thin shell over `har_assets.inference` (no Dagster)."""
