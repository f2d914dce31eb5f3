"""The model card of a registered version: what it was trained on, how it scored, what it is for.

Rendered as Markdown from the evaluation and the gate verdicts, written beside the model in its
MLflow run (`model_card.md`, `explanations.json`, `explanations/feature_importance.png`) and shown
in the Dagster UI.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_assets.lib.evaluation import CandidateEvaluation
from ml_assets.lib.gates import GateResult
from ml_assets.lib.slices import slice_table

if TYPE_CHECKING:
    from mlflow import MlflowClient

CARD_PATH = "model_card.md"
EXPLANATIONS_PATH = "explanations.json"
IMPORTANCE_PNG_PATH = "explanations/feature_importance.png"


@dataclass(frozen=True)
class CardFacts:
    """What the card says besides the evaluation: identity, lineage and intended use.

    Attributes:
        model_name: The registered model.
        version: The registered version.
        candidate: The winning candidate's name.
        model: What the model object is (`Pipeline(preprocess: ColumnTransformer, model: ...)`).
        run_id: The MLflow run holding the model and the card.
        snapshot_md5: DVC md5 of the training snapshot.
        holdout_md5: DVC md5 of the holdout.
        split_rows: Rows per part of the snapshot (train, validation, test).
        numeric: Numeric input columns.
        categorical: Categorical input columns.
        target: The label column.
        code_version: The training code version.
        params_hash: Hash of `params.yaml`.
        git_commit: The commit the code came from.
        intended_use: From `evaluation.model_card.intended_use`.
        limitations: From `evaluation.model_card.limitations`.
    """

    model_name: str
    version: str
    candidate: str
    model: str
    run_id: str
    snapshot_md5: str
    holdout_md5: str
    split_rows: Mapping[str, int]
    numeric: Sequence[str]
    categorical: Sequence[str]
    target: str
    code_version: str
    params_hash: str
    git_commit: str
    intended_use: str
    limitations: str


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; None shows as `-`, floats with four decimals."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_model_card(
    facts: CardFacts,
    evaluation: CandidateEvaluation,
    *,
    verdicts: Mapping[str, GateResult],
    checked_after_registration: Sequence[str],
    importance_image: str | None,
) -> str:
    """Renders the model card.

    Args:
        facts: Identity, lineage and intended use.
        evaluation: The holdout evaluation (overall, by slice, explanations).
        verdicts: Every gate decided by the evaluation, by check name.
        checked_after_registration: Checks that need the registered version and run after the card
            is written (their results are on the asset in Dagster).
        importance_image: Markdown of the importance chart (a relative path or a data URI); None for none.

    Returns:
        The card as Markdown.
    """
    m, base, champ = evaluation.metrics, evaluation.baseline, evaluation.champion
    champion_version = evaluation.comparison.champion_version
    champion_header = f"champion v{champion_version}" if champion_version else "champion"
    overall = markdown_table(
        ["metric", "this version", "baseline (prior)", champion_header],
        [
            [name, m.get(name), base.get(name), champ.get(name) if champ else None]
            for name in ("roc_auc", "f1", "accuracy", "log_loss")
        ]
        + [["rows", m.n_rows, base.n_rows, champ.n_rows if champ else None]],
    )
    sections = [
        f"# Model card: `{facts.model_name}` v{facts.version}",
        f"Candidate `{facts.candidate}`: {facts.model}. MLflow run `{facts.run_id}`.",
        "## Intended use",
        facts.intended_use or "_Not stated: set `evaluation.model_card.intended_use` in params.yaml._",
        "## Limitations",
        facts.limitations or "_Not stated: set `evaluation.model_card.limitations` in params.yaml._",
        "## Data",
        markdown_table(
            ["data", "DVC md5", "rows"],
            [
                ["training snapshot", facts.snapshot_md5, sum(facts.split_rows.values())],
                ["holdout (test part)", facts.holdout_md5, facts.split_rows.get("test")],
            ],
        ),
        f"Split rows: {', '.join(f'{k} {v}' for k, v in facts.split_rows.items())}. Target `{facts.target}`; "
        f"numeric inputs {', '.join(f'`{c}`' for c in facts.numeric) or 'none'}; categorical inputs "
        f"{', '.join(f'`{c}`' for c in facts.categorical) or 'none'}. The preprocessing is inside the model.",
        f"Code version {facts.code_version}, params hash `{facts.params_hash}`, git commit `{facts.git_commit}`.",
        "## Metrics on the holdout",
        overall,
        f"Against the champion: {evaluation.comparison.note}.",
    ]
    if evaluation.slices is not None and evaluation.slices.slices:
        rows = slice_table(evaluation.slices, champion_version=champion_version)
        sections += [
            "## Metrics by slice",
            markdown_table(
                ["slice", "rows", "roc_auc", "f1", "accuracy", "champion roc_auc", "vs champion", "note"],
                [list(r.values()) for r in rows],
            ),
        ]
    gate_rows = [[name, "passed" if v.passed else "FAILED", v.message] for name, v in verdicts.items()]
    gate_rows += [
        [name, "after registration", "see the checks of `registered_model`"] for name in checked_after_registration
    ]
    sections += ["## Gates", markdown_table(["check", "verdict", "detail"], gate_rows)]
    explanation = evaluation.explanation
    if explanation is not None:
        sections += [
            "## Explanations",
            f"Permutation importance: the drop of {explanation.scoring} when one input column is shuffled, "
            f"mean and standard deviation over {explanation.repeats} shuffles of {explanation.rows} holdout rows.",
            markdown_table(
                ["input column", "importance", "sd"],
                [[i.feature, i.mean, i.std] for i in explanation.importances],
            ),
        ]
        if importance_image:
            sections.append(importance_image)
    return "\n\n".join(sections) + "\n"


def log_card_artifacts(
    client: MlflowClient,
    run_id: str,
    *,
    card: str,
    explanation: dict[str, Any] | None,
    importance_png: bytes | None,
) -> list[str]:
    """Writes the card, the explanations and their chart as artifacts of the model's MLflow run.

    Args:
        client: An MLflow client.
        run_id: The run that logged the model (its artifacts sit beside the model).
        card: The Markdown card.
        explanation: `GlobalExplanation.as_dict()` and context; None to skip.
        importance_png: The importance chart; None to skip.

    Returns:
        The artifact paths written.
    """
    client.log_text(run_id, card, CARD_PATH)
    written = [CARD_PATH]
    if explanation is not None:
        client.log_dict(run_id, explanation, EXPLANATIONS_PATH)
        written.append(EXPLANATIONS_PATH)
    if importance_png is not None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / Path(IMPORTANCE_PNG_PATH).name
            path.write_bytes(importance_png)
            client.log_artifact(run_id, str(path), str(Path(IMPORTANCE_PNG_PATH).parent))
        written.append(IMPORTANCE_PNG_PATH)
    return written
