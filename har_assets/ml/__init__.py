"""Pure model, training, inference and evaluation code (PyTorch + scikit-learn, no Dagster)."""
