"""`specstress import OWNER/NAME`: a Hub dataset id through the Hub's own client, never needed offline.

The Hub cannot be reached here, so its client's download is replaced by one that hands back a
folder in the released schema, or fails as the client does offline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.errors import SpecstressError
from jobs.engine.rundir import Manifest, RunDir
from jobs.release import hub
from jobs.release.importer import import_release
from tests.jobs.release.release_data import build_release

REPO = "jifanz/stress_testing_model_spec"


def test_a_hub_id_is_downloaded_by_the_hub_client_and_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = build_release(tmp_path / "hub-cache" / "snapshot").root
    asked: list[dict[str, object]] = []

    def download(**kw: object) -> str:
        asked.append(kw)
        return str(folder)

    monkeypatch.setattr(hub, "snapshot_download", download)
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    result = import_release(REPO, str(tmp_path / "run"))
    assert asked == [{"repo_id": REPO, "repo_type": "dataset", "allow_patterns": hub.PATTERNS}]
    assert result.rows["scenarios"] == 36
    manifest = Manifest(RunDir.open(result.run_dir).root)
    assert manifest.data["release"]["source"] == f"hf://datasets/{REPO}"


def test_a_local_folder_of_that_name_is_read_without_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_release(tmp_path / "jifanz" / "stress_testing_model_spec")
    monkeypatch.setattr(hub, "snapshot_download", lambda **_: pytest.fail("the Hub was asked"))
    monkeypatch.chdir(tmp_path)
    assert import_release(REPO, str(tmp_path / "run")).rows["scenarios"] == 36


def test_without_the_extra_or_the_network_the_error_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hub, "snapshot_download", None)
    with pytest.raises(SpecstressError, match=r"is no local folder.*install the `hub` extra.*hf download"):
        import_release(REPO, str(tmp_path / "run"))

    def offline(**_: object) -> str:
        raise OSError("cannot reach huggingface.co")

    monkeypatch.setattr(hub, "snapshot_download", offline)
    with pytest.raises(
        SpecstressError, match=r"could not be downloaded: OSError: cannot reach huggingface.co"
    ):
        import_release(REPO, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_missing_path_that_is_no_hub_id_is_not_sent_to_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub, "snapshot_download", lambda **_: pytest.fail("the Hub was asked"))
    with pytest.raises(SpecstressError):
        import_release(str(tmp_path / "no" / "such" / "folder"), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
