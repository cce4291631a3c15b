"""Pictures for the Dagster UI (pure: matplotlib and NumPy, no Dagster): small PNGs embedded in asset metadata."""
