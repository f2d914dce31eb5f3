"""The graph's shape, read once when the code location loads.

Which candidates exist, how often sensors tick and the retrain cron come from `params.yaml` under
`ML_ASSETS_ROOT` (the repository root by default). Everything else is read at run time, so an
edit to a threshold applies to the next run; an edit to the shape needs a reload of the location.
"""

import os
from pathlib import Path

from ml_assets.lib.config import Params, load_params

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def graph_params() -> Params:
    """Loads the params that shape the graph."""
    root = os.environ.get("ML_ASSETS_ROOT")
    candidate = Path(root) / "params.yaml" if root else REPO_PARAMS
    return load_params(candidate if candidate.is_file() else REPO_PARAMS)


GRAPH = graph_params()
