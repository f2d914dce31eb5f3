"""Reading the registry: "not found" and "could not ask" are different answers."""

from __future__ import annotations

import pytest

from ml_assets.lib import tracking as T


def test_a_registry_that_answers_503_is_never_read_as_no_champion(down: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=down, registry_uri=down)
    with pytest.raises(
        T.RegistryUnavailable, match=rf"at `{down}` could not read the aliases of `m`.*nothing was changed"
    ):
        T.read_aliases(client, "m")
    with pytest.raises(T.RegistryUnavailable):
        T.load_champion(client, down, "m")
    with pytest.raises(T.RegistryUnavailable):
        T.find_version(client, "m", fingerprint="abc")


def test_a_missing_model_is_not_found(tmp_path, mlflow_template):
    import shutil

    from mlflow import MlflowClient

    shutil.copy(mlflow_template, tmp_path / "db")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'db'}", registry_uri=f"sqlite:///{tmp_path / 'db'}")
    assert T.read_aliases(client, "m") == {}
    assert T.load_champion(client, "unused", "m") == T.LoadedChampion(None)
    assert T.find_version(client, "m", fingerprint="abc") is None
