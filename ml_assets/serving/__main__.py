"""`python -m ml_assets.serving [--port 5001]` (or `make serve PORT=5001`): serve the champion, roll new ones out.

The model name comes from `params.yaml` (`registry.model_name`), the rollout settings from its `serving:`
section, the registry from `MLFLOW_TRACKING_URI` / `ML_ASSETS_ROOT`, and the Dagster webserver that hears
about each rollout step from `DAGSTER_WEBSERVER_URL`. Ctrl-C (SIGINT) or SIGTERM stops the proxy and
every model server it started within a few seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from types import FrameType

from starlette.applications import Starlette

from ml_assets.serving.app import Router, create_app
from ml_assets.serving.backends import log
from ml_assets.serving.controller import Target, lifecycle
from ml_assets.serving.server import server_config


def build(
    env: Mapping[str, str], *, poll_seconds: float | None = None, startup_timeout: float | None = None
) -> tuple[Starlette, Target]:
    """Builds the proxy app for the project the environment points at.

    Args:
        env: The environment (`ML_ASSETS_ROOT`, `MLFLOW_TRACKING_URI`, `DAGSTER_WEBSERVER_URL`).
        poll_seconds: Overrides `serving.poll_seconds`.
        startup_timeout: Overrides `serving.startup_timeout_seconds`.

    Returns:
        The ASGI app (with the controller that starts model servers running beside it) and what it serves.
    """
    from ml_assets.lib.config import load_params
    from ml_assets.lib.settings import resolve_locations

    locations = resolve_locations(env)
    params_path = locations.root / "params.yaml"
    params = load_params(params_path)
    overrides = {
        name: value
        for name, value in (("poll_seconds", poll_seconds), ("startup_timeout_seconds", startup_timeout))
        if value is not None
    }
    serving = dataclasses.replace(params.serving, **overrides)
    target = Target(
        model_name=params.registry.model_name,
        tracking_uri=locations.mlflow_tracking_uri,
        params_path=params_path,
        state_path=locations.root / serving.state_path,
        env=dict(env),
        overrides=overrides,
    )
    router = Router(model_name=target.model_name, params=serving)
    return create_app(router, lifecycle=lifecycle(target)), target


def main(argv: Sequence[str] | None = None) -> int:
    """Parses the command line and serves until SIGINT or SIGTERM."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.serving",
        description="Serve the registry's champion through a rollout proxy in front of MLflow's model server.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5001, help="public port (default: 5001)")
    parser.add_argument(
        "--poll-seconds", type=float, help="how often the alias is read (default: serving.poll_seconds)"
    )
    parser.add_argument("--startup-timeout", type=float, help="seconds a new model server may take to answer /ping")
    args = parser.parse_args(argv)
    app, target = build(os.environ, poll_seconds=args.poll_seconds, startup_timeout=args.startup_timeout)
    log(
        f"`{target.model_name}@champion` from {target.tracking_uri} on http://{args.host}:{args.port} "
        "(GET /rollout for the rollout state)"
    )
    server = uvicorn.Server(server_config(app, host=args.host, port=args.port))

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again for the previous
    # handler: make SIGTERM end like Ctrl-C, both with exit code 0 once everything is stopped.
    signal.signal(signal.SIGTERM, interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(f"ml_assets.serving: cannot listen on {args.host}:{args.port}; pick another --port")
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
