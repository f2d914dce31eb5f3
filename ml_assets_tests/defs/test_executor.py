"""The step executor is chosen by ML_ASSETS_EXECUTOR when the definitions are built; Celery workers share its config."""

from __future__ import annotations

import pytest
import yaml

from ml_assets.defs import build_definitions
from ml_assets.defs.jobs import CELERY_CONFIG, EXECUTOR_ENV, executor_for
from ml_assets_tests.conftest import REPO


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "in_process"),
        ("in_process", "in_process"),
        ("multiprocess", "multiprocess_forkserver"),
        ("celery", "celery"),
    ],
)
def test_the_environment_picks_the_training_executor_and_nothing_else_changes(
    monkeypatch: pytest.MonkeyPatch, value: str | None, name: str
):
    if value is None:
        monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    else:
        monkeypatch.setenv(EXECUTOR_ENV, value)
    defs = build_definitions()
    training = defs.resolve_job_def("training_job")
    assert training.executor_def.name == name
    assert defs.resolve_job_def("ingest_batch_job").executor_def.name == "in_process"
    assert training.tags["ml_assets/trigger"] == "manual"  # the job itself is unchanged


def test_an_unknown_executor_is_named_in_the_error():
    with pytest.raises(ValueError, match="ML_ASSETS_EXECUTOR=`dask` names no executor"):
        executor_for({EXECUTOR_ENV: "dask"})


def test_the_celery_workers_read_the_executors_own_settings():
    workers = yaml.safe_load((REPO / "deploy" / "scale" / "celery.yaml").read_text())["execution"]["config"]
    assert workers == CELERY_CONFIG
    # What `dagster-celery worker start -y` does with the file: it must validate as the executor's config.
    from dagster_celery.cli import get_validated_config

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
        patch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1:1/1")
        config = get_validated_config(str(REPO / "deploy" / "scale" / "celery.yaml"))
    assert config["broker"] == "redis://127.0.0.1:1/0"
    assert config["config_source"]["task_acks_late"] is True
