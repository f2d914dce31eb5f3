"""DVC as the data-version store: commit stage outputs, read their md5s, push and pull them.

DVC resolves stage and output paths against the working directory, so every call runs inside
`chdir(root)` (steps run in their own processes; the directory is restored afterwards).

Dagster produces the files; DVC records them in `dvc.lock`, keeps them in its cache and copies
them to the remote. The md5 DVC records is the data version everything downstream carries.
"""

from __future__ import annotations

import subprocess
from contextlib import chdir
from dataclasses import dataclass
from pathlib import Path

import yaml

REMOTE_NAME = "ml_assets"


class DvcError(RuntimeError):
    """A DVC operation failed; the message names the stage or file and what to do."""


@dataclass(frozen=True)
class DvcStore:
    """A DVC project rooted at `root`, pushing to `remote_url` (a folder, s3://..., and so on).

    `endpoint_url` points an `s3://` remote at an S3-compatible server (DVC's `endpointurl`).
    """

    root: Path
    remote_url: str
    endpoint_url: str | None = None

    def ensure_ready(self) -> None:
        """Initializes DVC under `root` when needed and points the default remote at `remote_url`.

        The remote goes into `.dvc/config.local`, DVC's machine-specific config that git ignores,
        so a server URL never lands in the repository (`dvc remote add --local ... ` and
        `dvc remote modify --local ... endpointurl` write the same).
        """
        from dvc.repo import Repo

        if not (self.root / ".dvc").is_dir():
            in_git = subprocess.run(
                ["git", "-C", str(self.root), "rev-parse", "--show-toplevel"], capture_output=True, text=True
            )
            top = Path(in_git.stdout.strip()).resolve() if in_git.returncode == 0 else None
            no_scm = top is None
            Repo.init(str(self.root), no_scm=no_scm, subdir=bool(top and top != self.root.resolve()))
        url = self.remote_url
        if "://" not in url and not Path(url).is_absolute():
            url = str((self.root / url).resolve())
        with chdir(self.root), Repo(str(self.root)) as repo, repo.config.edit("local") as config:
            settings: dict = config  # type: ignore[assignment] - DVC's config is a plain dict
            remote = {"url": url}
            if self.endpoint_url:
                remote["endpointurl"] = self.endpoint_url
            settings.setdefault("remote", {})[REMOTE_NAME] = remote
            settings.setdefault("core", {})["remote"] = REMOTE_NAME

    def commit_stage(self, stage: str) -> dict[str, str]:
        """Records a stage's current outputs in `dvc.lock` and the cache.

        Args:
            stage: A stage name in `dvc.yaml`.

        Returns:
            Output path -> md5, as written to `dvc.lock`.
        """
        from dvc.repo import Repo

        try:
            with chdir(self.root), Repo(str(self.root)) as repo:
                repo.commit(stage, force=True)
        except Exception as error:
            raise DvcError(
                f"`dvc commit {stage}` failed under `{self.root}`: {error}; run `dvc status` there"
            ) from error
        return self.stage_outputs(stage)

    def stage_outputs(self, stage: str) -> dict[str, str]:
        """Output path -> md5 of a stage, read from `dvc.lock` (empty when never committed)."""
        lock = self.root / "dvc.lock"
        if not lock.is_file():
            return {}
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        return {out["path"]: out["md5"] for out in stages.get(stage, {}).get("outs", [])}

    def push(self, *targets: str) -> int:
        """Copies the targets' cached data to the remote.

        Args:
            *targets: Stage names in `dvc.yaml`.

        Returns:
            How many files were transferred (0 when the remote already had them).
        """
        from dvc.repo import Repo

        try:
            with chdir(self.root), Repo(str(self.root)) as repo:
                return int(repo.push(targets=list(targets) or None))
        except Exception as error:
            raise DvcError(
                f"`dvc push {' '.join(targets)}` to `{self.remote_url}` failed: {error}; "
                "check ML_ASSETS_DVC_REMOTE and the remote's credentials"
            ) from error

    def materialize_md5(self, md5: str, out: Path) -> Path:
        """Writes the file whose DVC md5 is `md5` to `out`, from the cache or else the remote.

        Args:
            md5: A file md5 recorded in `dvc.lock` or on a model version.
            out: Where to write it.

        Returns:
            `out`.
        """
        import shutil

        from dvc.repo import Repo

        with chdir(self.root), Repo(str(self.root)) as repo:
            cache_path = Path(repo.cache.local.oid_to_path(md5))
            if not cache_path.is_file():
                try:
                    repo.cloud.pull([_hash_info(md5)], remote=REMOTE_NAME)  # type: ignore[arg-type]
                except Exception as error:
                    raise DvcError(
                        f"data version `{md5}` is in neither the DVC cache nor the remote `{self.remote_url}`: {error}"
                    ) from error
            if not cache_path.is_file():
                raise DvcError(f"data version `{md5}` is in neither the DVC cache nor the remote `{self.remote_url}`")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache_path, out)
        return out


def _hash_info(md5: str) -> object:
    from dvc_data.hashfile.hash_info import HashInfo

    return HashInfo("md5", md5)
