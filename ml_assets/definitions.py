"""The Dagster code location: everything comes from `ml_assets/defs/`."""

from ml_assets.defs import build_definitions

defs = build_definitions()
