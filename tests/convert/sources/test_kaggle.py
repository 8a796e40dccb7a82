"""``kaggle://COMPETITION`` against a local fake of Kaggle's download endpoint.

The fake checks what the real service would: basic auth with the user's name and key on
``/api/v1/competitions/data/download-all/<competition>``, answered by a redirect to a storage
host (here ``localhost``, another host name) that must receive no credentials at all.
"""

from __future__ import annotations

import base64
import json
import zipfile

import pytest
from zipserver import Seen, ZipServer
from ziptools import build

from ichprep.convert import sources
from ichprep.convert.sources import kaggle
from ichprep.errors import SourceError

COMPETITION = "rsna-intracranial-hemorrhage-detection"
ENDPOINT = f"/api/v1/competitions/data/download-all/{COMPETITION}"
MEMBERS = {f"stage_2_train/ID_{k:09x}.dcm": bytes([k]) * 2000 for k in range(12)}
GOOD = "Basic " + base64.b64encode(b"jeremy:k3y").decode()


def kaggle_like(seen: Seen) -> int | None:
    """401 without the right credentials on the API host; 400 if the storage host is sent any."""
    if seen.host == "127.0.0.1":
        return None if seen.path == ENDPOINT and seen.headers.get("Authorization") == GOOD else 401
    return 400 if "Authorization" in seen.headers else None


@pytest.fixture
def fake_kaggle(tmp_path, monkeypatch):
    path = tmp_path / "rsna.zip"
    path.write_bytes(build(MEMBERS, method=zipfile.ZIP_DEFLATED))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle-dir"))
    with ZipServer(path, guard=kaggle_like) as server:
        server.redirects[ENDPOINT] = server.url(host="localhost") + "?X-Goog-Signature=abc"
        monkeypatch.setenv(kaggle.API_VARIABLE, f"http://127.0.0.1:{server.port}/api/v1")
        yield server


def converted(source) -> dict[str, bytes]:
    return {item.member: data for item, data in source.for_workers().read(source.inputs())}


def test_credentials_from_the_environment_reach_the_api_host_only(fake_kaggle, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "jeremy")
    monkeypatch.setenv("KAGGLE_KEY", "k3y")
    source = sources.open_source(f"kaggle://{COMPETITION}")
    assert converted(source) == MEMBERS
    assert source.name == f"kaggle://{COMPETITION}"
    assert {item.source.split("!")[0] for item in source.inputs()} == {f"kaggle://{COMPETITION}"}
    hosts = {seen.host for seen in fake_kaggle.requests}
    assert hosts == {"127.0.0.1", "localhost"}, "the download went through the redirect to the storage host"


def test_credentials_from_kaggle_json(fake_kaggle, tmp_path, monkeypatch):
    folder = tmp_path / "kaggle-config"
    folder.mkdir()
    (folder / "kaggle.json").write_text(json.dumps({"username": "jeremy", "key": "k3y"}))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(folder))
    assert converted(sources.open_source(f"kaggle://{COMPETITION}")) == MEMBERS


def test_wrong_credentials_are_one_source_error_that_says_what_to_check(fake_kaggle, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "jeremy")
    monkeypatch.setenv("KAGGLE_KEY", "wrong")
    with pytest.raises(SourceError) as refused:
        sources.open_source(f"kaggle://{COMPETITION}")
    assert str(refused.value).startswith(f"kaggle://{COMPETITION}: HTTP 401 Unauthorized; check your Kaggle credentials")
    assert "wrong" not in str(refused.value)


def test_missing_credentials_are_one_source_error(fake_kaggle):
    with pytest.raises(SourceError, match="no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY"):
        sources.open_source(f"kaggle://{COMPETITION}")


@pytest.mark.parametrize("content", ["not json", json.dumps({"username": "jeremy"})])
def test_a_broken_kaggle_json_is_one_source_error(fake_kaggle, tmp_path, monkeypatch, content):
    folder = tmp_path / "kaggle-config"
    folder.mkdir()
    (folder / "kaggle.json").write_text(content)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(folder))
    with pytest.raises(SourceError, match="kaggle.json"):
        sources.open_source(f"kaggle://{COMPETITION}")


def test_a_url_that_names_no_competition_is_refused_before_any_request():
    with pytest.raises(SourceError, match="give a competition's name"):
        sources.open_source("kaggle://../etc/passwd")
