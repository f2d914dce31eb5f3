r"""Batch validation with the file-backed Great Expectations 1.x project in `gx/`.

`gx.get_context(mode="file", project_root_dir=ROOT)` opens the project (README, "Great
Expectations"): a pandas dataframe asset, the suite `landed_batch` and its twin
`landed_batch_unlabelled` (no expectation on the target), and a validation definition and
checkpoint for each; a checkpoint validates, then builds Data Docs. Each expectation's
`meta.check` is one of `CHECK_CATEGORIES`, each category one blocking Dagster check. A missing
suite is inferred from the first batch (`suite_inference.py`), which is then judged only by what
params.yaml fixes: `INFERRED_CHECKS` are "not judged", and if it fails the others the suite is
deleted again. The committed demo suite is reproduced from the repository root by::

    python -m ml_assets.lib.demo_data --landing /tmp/gx_sample --batches 4 --rows 1200 \
        --seed 7 --start-date 2026-11-01
    python -m ml_assets.lib.validation infer --landing /tmp/gx_sample --root .

Never imports Dagster; Great Expectations is imported inside functions (it takes seconds).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from ml_assets.lib.suite_inference import CHECK_CATEGORIES, INFERRED_CHECKS, InferenceSpec, infer_suite, normalize_frame

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context.data_context.file_data_context import FileDataContext

DATA_SOURCE, DATA_ASSET, BATCH_DEFINITION, DATA_DOCS_SITE = "ml_assets", "landed_batch", "whole_frame", "local_site"
UNLABELLED_SUFFIX = "_unlabelled"
Status = Literal["passed", "failed", "not_judged", "skipped"]


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result on one batch.

    Attributes:
        check: Its category, from `CHECK_CATEGORIES`.
        expectation: The GX expectation type.
        column: The column it is about, or None for table-level and multi-column ones.
        success: Whether it passed.
        observed: What GX saw, in short (plain JSON values).
        expected: Its arguments as a short string, e.g. "mostly=0.9".
        judged: False when it was inferred from this very batch.
    """

    check: str
    expectation: str
    column: str | None
    success: bool
    observed: Any
    expected: str
    judged: bool = True


@dataclass(frozen=True)
class CheckVerdict:
    """One check category's verdict on one batch.

    Attributes:
        check: The category.
        status: "passed", "failed", "not_judged" (inferred from this batch) or "skipped" (the
            target check of an unlabelled batch).
        outcomes: Its expectations' outcomes.
    """

    check: str
    status: Status
    outcomes: tuple[ExpectationOutcome, ...]

    @property
    def passed(self) -> bool:
        """Whether the batch may go on (anything but "failed")."""
        return self.status != "failed"

    def failures(self) -> tuple[ExpectationOutcome, ...]:
        """The judged outcomes that failed."""
        return tuple(o for o in self.outcomes if o.judged and not o.success)


@dataclass(frozen=True)
class ValidationReport:
    """One batch's checkpoint run, condensed.

    Attributes:
        batch_name: The batch's name (the GX run name).
        verdicts: One verdict per category, in `CHECK_CATEGORIES` order.
        page: The run's Data Docs page, relative to `data_docs_dir`.
        inferred: Whether the suite was inferred from this batch.
        kept: False when that suite was deleted again (the batch failed what was judged).
    """

    batch_name: str
    verdicts: dict[str, CheckVerdict]
    page: str
    inferred: bool = False
    kept: bool = True

    @property
    def success(self) -> bool:
        """Whether every check passed (or was not judged, or skipped)."""
        return all(v.passed for v in self.verdicts.values())


def data_docs_dir(root: str | os.PathLike[str]) -> Path:
    """The local Data Docs site of the project at `root`: the folder to serve; pages link relative to it."""
    return Path(root) / "gx" / "uncommitted" / "data_docs" / DATA_DOCS_SITE


def data_docs_url(base_url: str, page: str) -> str:
    """The URL of a page (relative to `data_docs_dir`) under the URL that serves that folder."""
    return base_url.rstrip("/") + "/" + urllib.parse.quote(page.lstrip("/"))


def suite_name(suite_path: str) -> str:
    """The suite name in params.yaml `validation.suite_path`; ValueError unless it is `gx/expectations/<name>.json`."""
    path = Path(suite_path)
    if path.parent != Path("gx/expectations") or path.suffix != ".json":
        raise ValueError(
            f"params.yaml `validation.suite_path` is `{suite_path}`; GX keeps suites at "
            "`gx/expectations/<name>.json` under the project root: use that form"
        )
    return path.stem


@functools.lru_cache(maxsize=4)
def open_context(root: str) -> FileDataContext:
    """The GX project at absolute path `root`, opened once per process; its data source is created if missing."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    context = gx.get_context(mode="file", project_root_dir=root)
    if DATA_SOURCE not in context.data_sources.all():
        asset = context.data_sources.add_pandas(DATA_SOURCE).add_dataframe_asset(DATA_ASSET)
        asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
    return context


def save_suites(context: FileDataContext, suite: ExpectationSuite, *, target: str) -> None:
    """Save (replace) a suite and its unlabelled twin (no `target`), each with validation definition and checkpoint."""
    import great_expectations as gx
    from great_expectations.checkpoint.actions import UpdateDataDocsAction

    batch = context.data_sources.get(DATA_SOURCE).get_asset(DATA_ASSET).get_batch_definition(BATCH_DEFINITION)
    docs = UpdateDataDocsAction(name="update_data_docs", site_names=[DATA_DOCS_SITE])
    for one in (suite, _unlabelled(suite, target=target)):
        definition = gx.ValidationDefinition(name=one.name, data=batch, suite=context.suites.add_or_update(one))
        definitions = [context.validation_definitions.add_or_update(definition)]
        checkpoint = gx.Checkpoint(
            name=one.name, validation_definitions=definitions, actions=[docs], result_format="BASIC"
        )
        context.checkpoints.add_or_update(checkpoint)


def validate_batch(
    df: pd.DataFrame,
    *,
    root: str | os.PathLike[str],
    suite_path: str,
    batch_name: str,
    spec: InferenceSpec,
    labelled: bool = True,
) -> ValidationReport:
    """Run the project's checkpoint on one batch, inferring the suite first if it is missing.

    Args:
        df: The batch, as landed; not modified.
        root: The project root (the folder that holds `gx/`).
        suite_path: params.yaml `validation.suite_path`, e.g. "gx/expectations/landed_batch.json".
        batch_name: The batch's name (e.g. its file name), the GX run name.
        spec: The target, and what inference needs when the suite is missing.
        labelled: Whether the batch carries the target; False runs the `_unlabelled` checkpoint,
            which skips the `target` check and judges the others.

    Returns:
        Every check category's verdict, and the run's Data Docs page.

    Raises:
        ValueError: If `suite_path` is not where GX keeps suites, the batch has duplicate column
            names, or the suite is missing and cannot be inferred from this batch.
    """
    from great_expectations.core.run_identifier import RunIdentifier

    name, where, gx_dir = suite_name(suite_path), f"batch `{batch_name}`", Path(root) / "gx"
    repeated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if repeated:
        raise ValueError(f"{where}: duplicate column name(s) {repeated}; rename them before validating")
    context = open_context(str(Path(root).resolve()))
    inferred, checkpoint = not (Path(root) / suite_path).is_file(), name if labelled else name + UNLABELLED_SUFFIX
    if inferred:
        try:
            save_suites(context, infer_suite(df, name=name, spec=spec), target=spec.target)
        except ValueError as error:
            raise ValueError(f"{where}: no suite `{suite_path}`, and none can be inferred from it: {error}") from error
    elif not (gx_dir / "checkpoints" / f"{checkpoint}.json").is_file() or (
        not labelled and _is_stale(context, name, spec)
    ):
        save_suites(context, context.suites.get(name), target=spec.target)
    batch = {"dataframe": normalize_frame(df)}
    result = context.checkpoints.get(checkpoint).run(batch_parameters=batch, run_id=RunIdentifier(run_name=batch_name))
    ((key, suite_result),) = result.run_results.items()
    results: list[Any] = suite_result.results
    outcomes: dict[str, list[ExpectationOutcome]] = {c: [] for c in CHECK_CATEGORIES}
    for r in results:
        check = (r.expectation_config.meta or {}).get("check")
        if check not in CHECK_CATEGORIES:  # the suite is a file people edit
            raise ValueError(
                f"{where}: `gx/expectations/{checkpoint}.json`: `{r.expectation_config.type}` "
                f"{r.expectation_config.kwargs.get('column') or ''} has meta.check={check!r}; set it to one of "
                f"{', '.join(CHECK_CATEGORIES)}"
            )
        judged = not (inferred and check in INFERRED_CHECKS)
        outcomes[check].append(_outcome(r, check=check, columns={str(c) for c in df.columns}, judged=judged))
    verdicts = {c: _verdict(c, tuple(o), labelled=labelled) for c, o in outcomes.items()}
    page = "validations/" + "/".join(key.to_tuple()) + ".html"  # GX's HtmlSiteStore layout
    kept = not inferred or all(v.passed for v in verdicts.values())
    if not kept:  # a batch that fails what was judged must not become the reference
        for store in (context.checkpoints, context.validation_definitions, context.suites):
            for one in (name, name + UNLABELLED_SUFFIX):
                store.delete(one)
    return ValidationReport(batch_name, verdicts, page=page, inferred=inferred, kept=kept)


def _verdict(check: str, outcomes: tuple[ExpectationOutcome, ...], *, labelled: bool) -> CheckVerdict:
    """One category's status from its outcomes."""
    status: Status = "passed"
    if check == "target" and not labelled:
        status = "skipped"
    elif outcomes and not any(o.judged for o in outcomes):
        status = "not_judged"
    elif any(o.judged and not o.success for o in outcomes):
        status = "failed"
    return CheckVerdict(check=check, status=status, outcomes=outcomes)


def _unlabelled(suite: ExpectationSuite, *, target: str) -> ExpectationSuite:
    """The suite for batches without labels: no expectation on the target, which leaves column lists."""
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    kept = []
    for e in suite.expectations:
        config: dict[str, Any] = e.configuration.to_json_dict()  # type: ignore[assignment]
        kwargs = config["kwargs"]
        if kwargs.get("column") != target:
            if "column_list" in kwargs:
                kwargs["column_list"] = [c for c in kwargs["column_list"] if c != target]
            kept.append(
                ExpectationConfiguration(type=config["type"], kwargs=kwargs, meta=config["meta"]).to_domain_obj()
            )
    meta = {**suite.meta, "ml_assets": {**suite.meta.get("ml_assets", {}), "derived_from": suite.name}}
    return ExpectationSuite(name=suite.name + UNLABELLED_SUFFIX, expectations=kept, meta=meta)


def _is_stale(context: FileDataContext, name: str, spec: InferenceSpec) -> bool:
    """Whether the unlabelled suite is missing or no longer derives from the suite (after an edit)."""

    def configs(suite: ExpectationSuite) -> list[dict]:
        return [{k: v for k, v in e.configuration.to_json_dict().items() if k != "id"} for e in suite.expectations]

    try:
        stored = context.suites.get(name + UNLABELLED_SUFFIX)
    except Exception:  # GX raises a DataContextError or a store error
        return True
    return configs(stored) != configs(_unlabelled(context.suites.get(name), target=spec.target))


def _outcome(result: Any, *, check: str, columns: set[str], judged: bool) -> ExpectationOutcome:
    """Condense one GX `ExpectationValidationResult`."""
    config, details = result.expectation_config, result.result or {}
    column = config.kwargs.get("column")
    missing = [c for c in ([column] if column else config.kwargs.get("column_list", [])) if c not in columns]
    info = result.exception_info or {}
    errors = [e for e in ([info] if "raised_exception" in info else info.values()) if e.get("raised_exception")]
    percent = details.get("unexpected_percent")
    observed: Any = {"unexpected_percent": None if percent is None else round(percent, 3)}
    observed["unexpected_count"] = details.get("unexpected_count")
    observed["partial_unexpected_list"] = list(details.get("partial_unexpected_list") or [])[:5]
    if config.type == "expect_column_to_exist":
        observed = "present" if result.success else "column missing"
    elif missing:
        observed = f"column{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)}"
    elif errors:
        observed = "error: " + str(errors[0].get("exception_message")).splitlines()[0][:150]
    elif "observed_value" in details:
        observed = details["observed_value"]
    kwargs = {k: v for k, v in config.kwargs.items() if k not in ("column", "batch_id") and v is not None}
    expected = ", ".join(f"{k}={v}" for k, v in kwargs.items())[:160]
    return ExpectationOutcome(
        check=check,
        expectation=str(config.type),
        column=None if column is None else str(column),
        success=bool(result.success),
        observed=observed,
        expected="present" if config.type == "expect_column_to_exist" else expected,
        judged=judged,
    )


def main(argv: list[str] | None = None) -> int:
    """`infer --landing DIR [--root .]`: infer the suite of `--root`'s GX project from batch files.

    Args:
        argv: Arguments without the program name; `None` reads `sys.argv`.

    Returns:
        The exit code.
    """
    from ml_assets.lib.config import load_params

    parser = argparse.ArgumentParser(prog="python -m ml_assets.lib.validation")
    parser.add_argument("command", choices=["infer"])
    parser.add_argument("--landing", type=Path, required=True, help="folder of .csv/.parquet batch files")
    parser.add_argument("--root", type=Path, default=Path("."), help="project root with params.yaml and gx/")
    args = parser.parse_args(argv)
    params = load_params(args.root / "params.yaml")
    files = sorted(p for p in args.landing.glob("*") if p.suffix in (".csv", ".parquet"))
    if not files:
        parser.error(f"`{args.landing}`: no .csv or .parquet batch files")
    df = pd.concat([pd.read_csv(p) if p.suffix == ".csv" else pd.read_parquet(p) for p in files], ignore_index=True)
    suite = infer_suite(df, name=suite_name(params.validation.suite_path), spec=InferenceSpec.from_params(params))
    save_suites(open_context(str(args.root.resolve())), suite, target=params.data.target)
    print(f"{params.validation.suite_path}: {len(suite.expectations)} expectations from {len(files)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
