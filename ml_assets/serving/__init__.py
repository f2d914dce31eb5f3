"""`make serve`: the registry's champion behind a rollout proxy (shadow, canary, automatic rollback).

- `app`: the ASGI proxy (Starlette on uvicorn, aiohttp to the model servers) and its router.
- `backends`: MLflow's own model server (`mlflow models serve`) as child processes, one per version.
- `controller`: follows `@champion`, drives each rollout with `ml_assets.lib.rollout`, keeps state.
- `reporting`: every rollout step as a materialization of the Dagster asset `rollout`.

Run it with `python -m ml_assets.serving` (see `__main__`).
"""
