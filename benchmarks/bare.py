"""The bare baseline: the graph's computations as one plain pandas + scikit-learn script.

No orchestrator, no tracking, no validation library, no DVC: it reads the landed batches, unions
them, splits, fits the preprocessing, runs every family's search as configured in `params.yaml`,
scores the winners on the validation part, picks the best, and evaluates it on the holdout with
the same baseline, latency and permutation-importance work as `model_evaluation`. It calls the
same `ml_assets.lib` functions the assets call, in one process, one after the other, so the graph
and this script must print the same holdout metrics; `make bench` checks that they do.

What the graph does beyond this is its overhead: the Great Expectations suite, the Parquet copies
and DVC commits, the IO manager, the MLflow runs and registry, the asset checks and the plots.
The champion comparison (a paired bootstrap) and the batch predictions need a champion, which a
fresh project does not have, so neither side does them in this scenario.

    python -m benchmarks.bare --root PROJECT [--exhaustive] [--json OUT]

`--exhaustive` also fits every configuration of every family on all training rows and reports the
best of those on the holdout: the figure the search's champion is compared with.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def own_peak_rss() -> int:
    """This process's own peak resident set size in bytes (VmHWM; not inherited from a parent)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def run(root: Path, *, exhaustive: bool) -> dict[str, Any]:
    """Runs the computations on the project under `root`; returns timings, the champion and its metrics."""
    started = time.perf_counter()
    steps: dict[str, float] = {}

    def step(name: str, since: float) -> float:
        now = time.perf_counter()
        steps[name] = now - since
        return now

    from ml_assets.lib.config import load_params
    from ml_assets.lib.evaluation import evaluate_candidate, score_model
    from ml_assets.lib.explanations import explain_globally
    from ml_assets.lib.features import fit_preprocessor, infer_feature_spec, split_dataset
    from ml_assets.lib.landing import list_landing
    from ml_assets.lib.snapshot import read_landed_batch, union_batches
    from ml_assets.lib.training import search_candidate

    params = load_params(root / "params.yaml")
    data = params.data
    t = step("imports", started)
    landing = root / data.landing_dir
    frames = {landed.key: read_landed_batch(landing / landed.name) for landed in list_landing(landing).files}
    t = step("read batches", t)
    snapshot = union_batches(frames).frame
    del frames
    dataset_bytes = int(snapshot.memory_usage(deep=True).sum())
    t = step("union", t)
    spec = infer_feature_spec(
        snapshot, target=data.target, id_columns=data.id_columns, feature_types=data.feature_types
    )
    split = split_dataset(
        snapshot,
        target=data.target,
        test_size=params.split.test_size,
        validation_size=params.split.validation_size,
        seed=params.split.seed,
        id_columns=data.id_columns,
    )
    del snapshot
    t = step("split", t)
    preprocessor = fit_preprocessor(split.train, spec)
    t = step("preprocessing", t)
    metric = params.training.selection_metric
    winners: dict[str, tuple[Any, float, dict[str, Any], int]] = {}
    for family in params.training.candidates:
        result = search_candidate(
            split.train,
            split.validation,
            preprocessor=preprocessor,
            spec=family,
            features=spec,
            metric=metric,
            schedule=params.training.search,
            seed=params.split.seed,
        )
        validation = score_model(result.model, split.validation, features=spec.features, target=data.target)
        winners[family.name] = (result.model, validation.get(metric), dict(result.config), result.rows)
        t = step(f"search {family.name}", t)
    best = max(sorted(winners), key=lambda name: winners[name][1])  # ties to the first name, as pick_best
    model = winners[best][0]
    evaluation = evaluate_candidate(
        model,
        train=split.train,
        holdout=split.test,
        features=spec.features,
        target=data.target,
        champion=None,
        champion_version=None,
        bootstrap_samples=params.gates.bootstrap_samples,
        confidence=params.gates.confidence,
        latency_samples=params.gates.latency_samples,
        seed=params.split.seed,
    )
    t = step("holdout evaluation", t)
    explain_globally(  # as `model_evaluation` does
        model,
        split.test,
        features=spec.features,
        target=data.target,
        max_rows=params.evaluation.explanation_rows,
        repeats=params.evaluation.explanation_repeats,
        seed=params.split.seed,
    )
    t = step("permutation importance", t)
    out: dict[str, Any] = {
        "rows": sum(split.sizes().values()),
        "dataset_bytes": dataset_bytes,
        "champion": best,
        "config": winners[best][2],
        "rows_fit": winners[best][3],
        "holdout": evaluation.metrics.scalars(),
        "steps": steps,
        "wall_seconds": time.perf_counter() - started,
    }
    if exhaustive:
        out["exhaustive"] = exhaustive_best(split, spec, preprocessor, params)
    out["peak_rss"] = own_peak_rss()
    return out


def exhaustive_best(split: Any, spec: Any, preprocessor: Any, params: Any) -> dict[str, Any]:
    """Every configuration of every family fit on all training rows; the best by validation, on the holdout."""
    from ml_assets.lib.evaluation import score_model
    from ml_assets.lib.training import train_candidate

    started = time.perf_counter()
    metric = params.training.selection_metric
    best: tuple[float, str, dict[str, Any], Any] | None = None
    fits = 0
    for family in params.training.candidates:
        for config in family.configurations():
            model = train_candidate(
                split.train,
                preprocessor=preprocessor,
                spec=family.with_params(config),
                features=spec,
                seed=params.split.seed,
            )
            fits += 1
            score = score_model(model, split.validation, features=spec.features, target=spec.target).get(metric)
            if best is None or score > best[0]:
                best = (score, family.name, config, model)
    assert best is not None
    holdout = score_model(best[3], split.test, features=spec.features, target=spec.target)
    return {
        "champion": best[1],
        "config": best[2],
        "fits": fits,
        "holdout": holdout.scalars(),
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: runs on a project root and prints (or writes) the result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="a project root: params.yaml and its landing folder")
    parser.add_argument("--exhaustive", action="store_true", help="also fit every configuration on all rows")
    parser.add_argument("--json", type=Path, help="write the result here instead of stdout")
    args = parser.parse_args(argv)
    result = run(args.root.resolve(), exhaustive=args.exhaustive)
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
