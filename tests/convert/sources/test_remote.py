"""A zip over HTTP: range reads equal to the file's, retries, resumed bodies, headers bound to their host, redaction.

Every server here is ``zipserver.ZipServer`` on the loopback interface.
"""

from __future__ import annotations

import base64
import random
import zipfile
from pathlib import Path

import pytest
from cli_run import ichprep
from zipserver import ZipServer
from ziptools import build

from ichprep.convert import sources
from ichprep.convert.sources import ZipArchive, ZipStream, remote
from ichprep.convert.sources.remote import (
    Http,
    NetworkError,
    Patience,
    request_headers,
    shown,
)
from ichprep.convert.sources.zipformat import PROBE
from ichprep.errors import IchprepError, SourceError

QUICK = Patience(tries=3, backoff=0.01, longest=0.05, connect=2, read=2)
MEMBERS = {f"stage_2_train/ID_{k:09x}.dcm": bytes(3000) + random.Random(k).randbytes(5000 + 300 * k) for k in range(40)}
"""About 450 KB that deflate cannot shrink: bigger than the listing's first request."""


@pytest.fixture
def archive(tmp_path) -> Path:
    path = tmp_path / "rsna.zip"
    path.write_bytes(build({**MEMBERS, "stage_2_train.csv": b"ID,Label\n" * 500}, method=zipfile.ZIP_DEFLATED))
    return path


@pytest.fixture
def quick(monkeypatch):
    """Give up after 3 tries, 10 ms apart: the tests that exhaust retries stay fast."""
    monkeypatch.setattr(remote, "PATIENCE", QUICK)


def read_all(source) -> dict[str, bytes | Exception]:
    worker = source.for_workers()
    return {item.member: data for item, data in worker.read(list(source.inputs()))}


def member_requests(server: ZipServer) -> list[str]:
    """Range headers of the requests after the listing."""
    return [seen.headers.get("Range", "") for seen in server.requests if not seen.headers.get("Range", "").startswith("bytes=-")]


@pytest.mark.parametrize("url, expected", [
    ("https://user:pw@storage.example.com/a/b.zip?X-Amz-Signature=abc&token=t&plain", "https://storage.example.com/a/b.zip?X-Amz-Signature=***&token=***&***"),
    ("http://127.0.0.1:8080/rsna.zip#frag", "http://127.0.0.1:8080/rsna.zip"),
    ("https://[::1]:9/x.zip?key=s3cret", "https://[::1]:9/x.zip?key=***"),
])
def test_shown_urls_keep_no_credentials(url, expected):
    assert shown(url) == expected


def test_headers_come_from_the_option_and_the_environment_and_a_bad_one_is_never_echoed(monkeypatch):
    monkeypatch.setenv("ICHPREP_HEADERS", "X-From-Env: one\n\nAuthorization: Bearer abc def\n")
    assert request_headers(["X-Given:  two "]) == {"X-Given": "two", "X-From-Env": "one", "Authorization": "Bearer abc def"}
    with pytest.raises(IchprepError) as refused:
        request_headers(["Bearer s3cret-token"])
    assert "s3cret" not in str(refused.value) and "header 1" in str(refused.value)


def test_a_url_is_read_by_ranges_with_the_files_bytes_and_one_request_per_run(archive):
    with ZipServer(archive) as server:
        source = sources.open_source(server.url() + "?token=s3cret")
        assert isinstance(source, ZipArchive)
        got = read_all(source)
        requests = member_requests(server)
    assert got == MEMBERS
    assert len(requests) == 1, f"40 neighbouring members are one range, not {len(requests)} requests"
    assert source.name == f"http://127.0.0.1:{server.port}/rsna.zip?token=***"
    assert all("s3cret" not in item.source for item in source.inputs())


def test_503s_and_bodies_cut_short_are_retried_and_resumed_where_they_broke(archive):
    with ZipServer(archive, faults=[503]) as server:
        source = sources.open_source(server.url())
        inputs = source.inputs()
        server.faults.extend([503, ("drop", 20_000), 503, ("drop", 50_000)])
        got = {item.member: data for item, data in source.for_workers().read(inputs)}
        requests = member_requests(server)
    assert got == MEMBERS
    assert requests == [f"bytes={start}-{inputs[-1].ref.end - 1}" for start in (0, 0, 20_000, 20_000, 70_000)], \
        "a 503 asks again for the same range, a broken body for the rest from where it broke"
    assert server.served <= PROBE + archive.stat().st_size, "the tail probe, then each byte of the members once"


def test_a_member_whose_range_fails_for_good_is_a_network_error_the_run_goes_on(archive, quick):
    with ZipServer(archive) as server:
        source = sources.open_source(server.url())
        inputs = source.inputs()
        server.faults.extend([503] * QUICK.tries)
        worker = source.for_workers()
        first = list(worker.read(inputs[:20]))
        second = list(worker.read(inputs[20:]))
    assert {str(data) for _, data in first} == {f"network: HTTP 503 Service Unavailable (after {QUICK.tries} tries)"}
    assert all(isinstance(data, NetworkError) and isinstance(data, ValueError) for _, data in first)
    assert {item.member: data for item, data in second} == {i.member: MEMBERS[i.member] for i in inputs[20:]}


def test_a_stalled_answer_times_out_and_is_tried_again(archive):
    with ZipServer(archive) as server:
        http = Http(server.url(), patience=Patience(tries=3, backoff=0.01, read=0.3))
        source = ZipArchive(http)
        assert http.probe() is None
        inputs = source.inputs()
        server.faults.append(("stall", 1.0))
        assert {i.member: d for i, d in source.for_workers().read(inputs)} == MEMBERS


def test_headers_go_to_the_urls_own_host_and_never_follow_a_redirect_to_another(archive):
    with ZipServer(archive) as server:
        server.redirects["/start.zip"] = server.url(host="localhost")
        server.redirects["/same.zip"] = server.url()
        for start in ("/start.zip", "/same.zip"):
            source = sources.open_source(server.url(path=start), ["X-Secret: s3cret"])
            assert read_all(source) == MEMBERS
    for seen in server.requests:
        sent = seen.headers.get("X-Secret")
        assert sent == ("s3cret" if seen.host == "127.0.0.1" else None), seen


def test_an_expired_redirect_target_sends_the_client_back_to_the_url(archive):
    expired = {"on": False}
    with ZipServer(archive, guard=lambda seen: 403 if expired["on"] and "sig=old" in seen.path else None) as server:
        server.redirects["/start.zip"] = server.url() + "?sig=old"
        source = sources.open_source(server.url(path="/start.zip"))
        inputs = source.inputs()
        worker = source.for_workers()
        list(worker.read(inputs[:1]))
        expired["on"] = True
        server.redirects["/start.zip"] = server.url() + "?sig=new"
        assert {i.member: d for i, d in worker.read(inputs)} == MEMBERS


@pytest.mark.parametrize("status, words", [(401, "HTTP 401 Unauthorized; check --header"), (403, "HTTP 403 Forbidden; check --header"),
                                           (404, "HTTP 404 Not Found")])
def test_a_refused_listing_is_one_source_error(archive, status, words):
    with ZipServer(archive, guard=lambda seen: status) as server, pytest.raises(SourceError) as refused:
        sources.open_source(server.url() + "?key=s3cret", ["Authorization: Bearer s3cret"])
    hint = " and ICHPREP_HEADERS" if status != 404 else ""
    assert str(refused.value) == f"http://127.0.0.1:{server.port}/rsna.zip?key=***: {words}{hint}"


def test_credentials_in_the_url_become_basic_auth_for_its_host_and_are_never_shown(archive):
    expected = "Basic " + base64.b64encode(b"jeremy:pa55").decode()
    with ZipServer(archive, guard=lambda seen: None if seen.headers.get("Authorization") == expected else 401) as server:
        source = sources.open_source(f"http://jeremy:pa55@127.0.0.1:{server.port}/rsna.zip")
        assert read_all(source) == MEMBERS
    assert source.name == f"http://127.0.0.1:{server.port}/rsna.zip"


@pytest.mark.parametrize("url", ["http://", "https://exa mple.com/x.zip"])
def test_a_url_that_cannot_be_fetched_is_one_source_error(url):
    with pytest.raises(SourceError, match="not a URL that can be fetched"):
        sources.open_source(url)


def test_a_malformed_header_is_one_line_on_the_command_line_without_its_text(tmp_path):
    run = ichprep("convert", "http://127.0.0.1:9/x.zip", tmp_path / "out", "--header", "Bearer s3cret")
    assert run.exit_code == 2
    assert run.stderr.startswith("ichprep: error: header 1") and len(run.stderr.strip().splitlines()) == 1
    assert "s3cret" not in run.output
    assert not (tmp_path / "out").exists()


def test_an_unreachable_host_is_one_source_error_after_the_retries(quick):
    with pytest.raises(SourceError, match=r"^http://127\.0\.0\.1:9/x\.zip: cannot connect .*\(after 3 tries\)$"):
        sources.open_source("http://127.0.0.1:9/x.zip")


def test_what_a_server_sends_that_is_not_a_zip_is_a_source_error(tmp_path):
    page = tmp_path / "index.zip"
    page.write_text("<html>Please log in</html>")
    with ZipServer(page) as server, pytest.raises(SourceError, match="not a readable zip archive"):
        sources.open_source(server.url()).inputs()


def test_a_server_that_ignores_range_is_read_in_one_pass_resumed_by_dropping_what_was_read(archive):
    size = archive.stat().st_size
    with ZipServer(archive, ranges=False, faults=[("drop", 30_000)]) as server:
        source = sources.open_source(server.url())
        assert isinstance(source, ZipStream)
        got = {item.member: data for item, data in source.for_workers().read(list(source.inputs()))}
    assert got == MEMBERS
    assert len(server.requests) == 2 and server.served == size + 30_000
    assert source.fetched == size + 30_000
