"""Typed view of `params.yaml`, the project's single configuration file (also DVC's params file).

Everything tunable lives in `params.yaml`; this module only parses and validates it, so a typo
fails at load time with the key that is wrong instead of deep inside a run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ml_assets.lib.evaluation_params import EvaluationParams, evaluation_fields

SELECTION_METRICS = ("accuracy", "f1", "roc_auc", "neg_log_loss")


class ParamsError(ValueError):
    """Raised when `params.yaml` is missing a key or holds a value of the wrong kind."""


@dataclass(frozen=True)
class DataParams:
    """Where data lands and what the label is."""

    landing_dir: str
    validated_dir: str
    snapshot_path: str
    holdout_path: str
    target: str
    id_columns: tuple[str, ...] = ()
    feature_types: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id_columns", tuple(self.id_columns or ()))
        object.__setattr__(self, "feature_types", dict(self.feature_types or {}))


@dataclass(frozen=True)
class DemoParams:
    """The demo data written on first run when the landing folder is empty."""

    seed: int
    batches: int
    rows_per_batch: int
    start_date: str


@dataclass(frozen=True)
class ValidationParams:
    """Limits used when a Great Expectations suite is inferred from the first batch."""

    suite_path: str
    min_rows: int
    max_null_fraction: float
    max_duplicate_fraction: float
    min_classes: int


@dataclass(frozen=True)
class SplitParams:
    """The deterministic train/validation/test split."""

    seed: int
    test_size: float
    validation_size: float


@dataclass(frozen=True)
class CandidateSpec:
    """One estimator family: a dotted scikit-learn class path, its fixed params and its search space.

    `search` maps a param to the values to try; every combination (a grid) is one configuration,
    `params` fills in the rest. Without `search` the family is the single configuration `params`.
    """

    name: str
    estimator: str
    params: Mapping[str, Any]
    search: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    max_rows: int | None = None

    def configurations(self) -> list[dict[str, Any]]:
        """Every configuration of the search space, in grid order (`params` overlaid by each combination)."""
        from sklearn.model_selection import ParameterGrid

        return [{**self.params, **combination} for combination in ParameterGrid(dict(self.search))]

    def with_params(self, params: Mapping[str, Any]) -> CandidateSpec:
        """The same family pinned to one configuration (no search), e.g. the one a run chose."""
        return CandidateSpec(name=self.name, estimator=self.estimator, params=dict(params), max_rows=self.max_rows)


@dataclass(frozen=True)
class SearchParams:
    """The successive-halving schedule every family's search follows (see `ml_assets/lib/training.py`)."""

    factor: int = 3
    min_rows: int = 2000
    max_rows: int | None = None
    validation_rows: int | None = None
    budget_seconds: float | None = None
    n_jobs: int = 1


@dataclass(frozen=True)
class TrainingParams:
    """Estimator families to search, the schedule, and the validation metric that picks the best."""

    selection_metric: str
    candidates: tuple[CandidateSpec, ...]
    search: SearchParams = field(default_factory=SearchParams)

    def candidate(self, name: str) -> CandidateSpec:
        """Returns the candidate called `name`.

        Args:
            name: A key of `training.candidates` in `params.yaml`.

        Returns:
            The candidate's spec.
        """
        for spec in self.candidates:
            if spec.name == name:
                return spec
        known = ", ".join(f"`{c.name}`" for c in self.candidates)
        raise ParamsError(
            f"candidate `{name}` is not in params.yaml `training.candidates` (known: {known}); "
            "reload the code location after editing params.yaml"
        )


@dataclass(frozen=True)
class GateParams:
    """Thresholds of the blocking model checks."""

    min_roc_auc: float
    min_f1: float
    baseline_margin: float
    non_inferiority_margin: float
    confidence: float
    min_power: float
    bootstrap_samples: int
    max_cpu_ms_per_row: float
    latency_samples: int
    min_class_share: float
    min_slice_roc_auc: float = 0.0
    max_slice_regression: float = 1.0


@dataclass(frozen=True)
class RegistryParams:
    """The MLflow experiment and registered model name."""

    model_name: str
    experiment_name: str


@dataclass(frozen=True)
class DriftParams:
    """The drift decision rule (see `ml_assets/lib/drift.py`)."""

    alpha: float
    psi_threshold: float
    min_samples: int
    correction: str
    bins: int
    cooldown_hours: float


@dataclass(frozen=True)
class RetrainParams:
    """When the sensors retrain (see `ml_assets/lib/retrain.py`)."""

    min_new_rows: int
    performance_metric: str
    min_live_score: float
    schedule: str
    performance_retry_minutes: float = 60.0


@dataclass(frozen=True)
class AutomationParams:
    """How often the sensors look."""

    landing_interval_seconds: int = 30
    retrain_interval_seconds: int = 30
    settle_seconds: float = 10.0
    max_batches_per_tick: int = 100


ROLLOUT_MODES = ("shadow", "canary", "direct")


@dataclass(frozen=True)
class ServingParams:
    """How `make serve` proxies requests and rolls a new champion out (see `ml_assets/lib/rollout.py`)."""

    mode: str = "canary"
    canary_steps: tuple[float, ...] = (0.1, 0.5, 1.0)
    step_seconds: float = 60.0
    min_requests_per_step: int = 100
    max_error_rate: float = 0.02
    max_p99_latency_ratio: float = 2.0
    min_agreement: float | None = None
    max_body_bytes: int = 1_048_576
    body_timeout_seconds: float = 10.0
    backend_timeout_seconds: float = 30.0
    poll_seconds: float = 5.0
    startup_timeout_seconds: float = 300.0
    shadow_max_in_flight: int = 64
    latency_window: int = 10_000
    state_path: str = ".serving/rollout.json"

    def __post_init__(self) -> None:
        steps = tuple(float(s) for s in self.canary_steps)
        object.__setattr__(self, "canary_steps", steps)
        if self.mode not in ROLLOUT_MODES:
            raise ParamsError(f"params.yaml: `serving.mode` is `{self.mode}`; use one of {', '.join(ROLLOUT_MODES)}")
        if not steps or steps[-1] != 1.0 or any(not a < b for a, b in zip((0.0, *steps), steps, strict=False)):
            raise ParamsError(
                f"params.yaml: `serving.canary_steps` is {list(steps)}; give increasing shares in (0, 1] ending "
                "with 1.0 (reaching 1.0 promotes the new version)"
            )
        if not 0 <= self.max_error_rate < 1 or self.max_p99_latency_ratio <= 0:
            raise ParamsError("params.yaml: `serving.max_error_rate` must be in [0, 1) and `max_p99_latency_ratio` > 0")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
            raise ParamsError(f"params.yaml: `serving.min_agreement` is {self.min_agreement}; use null or [0, 1]")
        positive = ("step_seconds", "min_requests_per_step", "max_body_bytes", "body_timeout_seconds")
        positive += ("backend_timeout_seconds", "poll_seconds", "startup_timeout_seconds", "latency_window")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ParamsError(f"params.yaml: `serving.{name}` is {getattr(self, name)}; it must be positive")


@dataclass(frozen=True)
class Params:
    """All of `params.yaml`, parsed."""

    data: DataParams
    demo: DemoParams
    validation: ValidationParams
    split: SplitParams
    training: TrainingParams
    gates: GateParams
    registry: RegistryParams
    drift: DriftParams
    retrain: RetrainParams
    automation: AutomationParams
    raw: Mapping[str, Any]
    serving: ServingParams = field(default_factory=ServingParams)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)

    def section_hash(self, *sections: str) -> str:
        """Returns a short, stable hash of the named top-level sections (all when none named).

        Args:
            *sections: Top-level keys of `params.yaml`.

        Returns:
            The first 12 hex digits of the SHA-256 of their canonical JSON.
        """
        chosen = {k: self.raw.get(k) for k in (sections or sorted(self.raw))}
        return stable_hash(chosen)


def stable_hash(value: Any) -> str:
    """Returns the first 12 hex digits of the SHA-256 of `value` as canonical JSON.

    Args:
        value: Anything JSON can encode (keys are sorted).

    Returns:
        A short hex digest that is the same on every machine.
    """
    encoded = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:12]


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if not isinstance(value, Mapping):
        raise ParamsError(f"params.yaml: section `{key}` is missing or not a mapping")
    return value


def _build(cls: type, raw: Mapping[str, Any], key: str, **overrides: Any) -> Any:
    section = dict(_section(raw, key))
    section.update(overrides)
    names = set(cls.__dataclass_fields__)
    unknown = sorted(set(section) - names)
    if unknown:
        raise ParamsError(f"params.yaml: unknown key(s) {unknown} in `{key}`; allowed: {sorted(names)}")
    try:
        return cls(**section)
    except TypeError as error:
        raise ParamsError(f"params.yaml: section `{key}`: {error}") from error


def _candidate(name: str, raw: Any) -> CandidateSpec:
    where = f"params.yaml: `training.candidates.{name}`"
    if not isinstance(raw, Mapping) or "estimator" not in raw:
        raise ParamsError(f"{where} must be a mapping with an `estimator` (a dotted scikit-learn class path)")
    unknown = sorted(set(raw) - {"estimator", "params", "search", "max_rows"})
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; allowed: estimator, params, search, max_rows")
    search = raw.get("search") or {}
    if not isinstance(search, Mapping) or any(not isinstance(v, list) or not v for v in search.values()):
        raise ParamsError(f"{where}.search must map each param to a non-empty list of values, e.g. {{C: [0.1, 1.0]}}")
    max_rows = raw.get("max_rows")
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise ParamsError(f"{where}.max_rows must be a positive number of rows or null")
    return CandidateSpec(
        name=name,
        estimator=raw["estimator"],
        params=dict(raw.get("params") or {}),
        search={k: tuple(v) for k, v in search.items()},
        max_rows=max_rows,
    )


def parse_params(raw: Mapping[str, Any]) -> Params:
    """Validates a parsed `params.yaml` mapping.

    Args:
        raw: The YAML document as a mapping.

    Returns:
        The typed parameters.

    Raises:
        ParamsError: A section or key is missing, unknown, or of the wrong kind.
    """
    training_raw = _section(raw, "training")
    candidates_raw = training_raw.get("candidates")
    if not isinstance(candidates_raw, Mapping) or not candidates_raw:
        raise ParamsError("params.yaml: `training.candidates` must name at least one estimator")
    candidates = tuple(_candidate(name, spec) for name, spec in candidates_raw.items())
    search = _build(SearchParams, training_raw, "search") if "search" in training_raw else SearchParams()
    if search.factor < 2 or search.min_rows < 1 or (search.max_rows is not None and search.max_rows < search.min_rows):
        raise ParamsError(
            "params.yaml: `training.search` needs factor >= 2 and 1 <= min_rows <= max_rows (max_rows may be null)"
        )
    training = _build(TrainingParams, raw, "training", candidates=candidates, search=search)
    if training.selection_metric not in SELECTION_METRICS:
        raise ParamsError(
            f"params.yaml: `training.selection_metric` is `{training.selection_metric}`; "
            f"use one of {', '.join(SELECTION_METRICS)}"
        )
    split = _build(SplitParams, raw, "split")
    gates = _build(GateParams, raw, "gates")
    if not 0 <= gates.min_slice_roc_auc <= 1 or not 0 <= gates.max_slice_regression <= 1:
        raise ParamsError("params.yaml: `gates.min_slice_roc_auc` and `gates.max_slice_regression` must be in [0, 1]")
    if not 0 < split.test_size < 1 or not 0 < split.validation_size < 1 - split.test_size:
        raise ParamsError(
            "params.yaml: `split.test_size` and `split.validation_size` must be in (0, 1) and sum below 1"
        )
    return Params(
        data=_build(DataParams, raw, "data"),
        demo=_build(DemoParams, raw, "demo"),
        validation=_build(ValidationParams, raw, "validation"),
        split=split,
        training=training,
        gates=gates,
        registry=_build(RegistryParams, raw, "registry"),
        drift=_build(DriftParams, raw, "drift"),
        retrain=_build(RetrainParams, raw, "retrain"),
        automation=_build(AutomationParams, raw, "automation") if "automation" in raw else AutomationParams(),
        raw=dict(raw),
        serving=_build(ServingParams, raw, "serving") if "serving" in raw else ServingParams(),
        evaluation=_build(EvaluationParams, raw, "evaluation", **evaluation_fields(_section(raw, "evaluation")))
        if "evaluation" in raw
        else EvaluationParams(),
    )


def load_params(path: str | Path) -> Params:
    """Reads and validates `params.yaml`.

    Args:
        path: Path of the YAML file.

    Returns:
        The typed parameters.

    Raises:
        ParamsError: The file is missing or invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file `{path}` not found; run from the repository root or set ML_ASSETS_ROOT")
    with path.open() as handle:
        raw = yaml.safe_load(handle) or {}
    return parse_params(raw)
