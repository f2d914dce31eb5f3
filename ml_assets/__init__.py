"""ml_assets: an asset-centric ML lifecycle on Dagster, DVC, Great Expectations and MLflow."""
