"""Reading the raw participant format: files, units, labels."""
