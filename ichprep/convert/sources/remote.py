"""A zip archive over HTTP(S): range requests, redirects, retries, and headers that never leave their host.

urllib3 does the HTTP (connection pools, timeouts, streaming bodies); what is ichprep's own is
policy. Redirects are followed here rather than by urllib3, so that the user's headers go only
to the URL's own scheme, host and port, never to a redirect target elsewhere (a signed storage
URL must not receive a Kaggle key). Connection errors, timeouts, 429 and 5xx answers and bodies
cut short are retried with exponential backoff (``Retry-After`` honoured), and a body that
breaks resumes with a range from the byte where it broke. A URL is only ever shown through
``shown``, which drops user info and the values of its query string (signatures, tokens).
"""

from __future__ import annotations

import base64
import os
import re
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from ichprep.convert.sources.base import ReadError
from ichprep.convert.sources.inflight import IN_FLIGHT, Meter
from ichprep.convert.sources.zipformat import PROBE
from ichprep.errors import IchprepError

HEADERS_VARIABLE = "ICHPREP_HEADERS"
"""Extra request headers, one ``Name: value`` per line: keeps a secret out of the shell's history."""
REDIRECTS = {301, 302, 303, 307, 308}
RETRY = {408, 429}
"""Answers worth asking again, with every 5xx."""
MAX_REDIRECTS = 10
EXPIRED = {400, 401, 403, 404, 410}
"""Answers from a remembered redirect target that mean its signature ran out: ask the URL again."""
CHUNK = 1024 * 1024
TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+)")


class NetworkError(ReadError):
    """A request that failed for good: after every retry, or with an answer no retry changes."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(f"network: {reason}")
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Patience:
    """How hard to try: attempts per request, backoff between them, and timeouts (seconds)."""

    tries: int = 8
    backoff: float = 0.5
    longest: float = 30.0
    connect: float = 30.0
    read: float = 120.0

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row: 0.5 s, 1 s, 2 s, ... up to ``longest``."""
        return min(self.longest, self.backoff * 2 ** (failures - 1))


PATIENCE = Patience()
"""The patience of every new ``Http``."""


def shown(url: str) -> str:
    """``url`` as it may be printed or stored: no user info, no fragment, every query value replaced by ``***``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = "&".join(f"{item.partition('=')[0]}=***" if "=" in item else "***" for item in parts.query.split("&") if item)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def request_headers(given: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """``--header`` values and the lines of ``ICHPREP_HEADERS`` as a dict; a malformed one is an ``IchprepError``.

    The message names the header's position, never its text: it may hold a secret.
    """
    lines = [line for line in [*given, *os.environ.get(HEADERS_VARIABLE, "").splitlines()] if line.strip()]
    headers = {}
    for number, line in enumerate(lines, 1):
        name, colon, value = line.partition(":")
        if not colon or not TOKEN.fullmatch(name.strip()) or "\r" in value or "\n" in value:
            raise IchprepError(f"header {number} (of --header and {HEADERS_VARIABLE}) is not 'Name: value'; "
                               "its text is not shown, as it may hold a secret")
        headers[name.strip()] = value.strip()
    return headers


def without_userinfo(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without ``user:password@``, and the basic-auth header those credentials make (bound to its host like any header)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])), {"Authorization": f"Basic {token}"}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _reason(err: Exception) -> str:
    """A failed connection in a few words (urllib3's own messages name hosts and pools, not our URL)."""
    import urllib3.exceptions as e

    kinds = [(e.NameResolutionError, "host name not resolved"), (e.NewConnectionError, "cannot connect"),
             (e.ConnectTimeoutError, "connect timed out"), (e.ReadTimeoutError, "read timed out"),
             (e.SSLError, "TLS failed"), (e.ProtocolError, "connection broken")]
    kind = next((text for cls, text in kinds if isinstance(err, cls)), type(err).__name__)
    detail = " ".join(str(err).split())
    detail = detail.split("): ", 1)[-1] if "Pool(" in detail or "Connection(" in detail else detail
    return f"{kind} ({detail[:160]})" if detail else kind


@dataclass
class Session:
    """What a process keeps of a URL from one task to the next: its connections, where it last redirected, its link's measure."""

    pool: Any
    location: str | None = None
    meter: Meter = field(default_factory=Meter)


@lru_cache(maxsize=8)
def session(url: str, connect: float, read: float) -> Session:
    """The process's one session for ``url``: a worker reuses its connections and redirect target for every batch.

    A connection for each request in flight is kept open: a new one costs another round trip (two more for TLS).
    """
    import urllib3

    timeout = urllib3.Timeout(connect=connect, read=read)
    return Session(urllib3.PoolManager(num_pools=4, maxsize=IN_FLIGHT, retries=False, timeout=timeout))


@dataclass
class Http:
    """A zip archive at a URL, read by byte ranges, several at once. Picklable: workers open their own connections."""

    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    label: str | None = None
    """How the archive is shown (``kaggle://...``); the redacted URL when None."""
    patience: Patience = field(default_factory=lambda: PATIENCE)
    fetched: int = 0
    _tail: tuple[int, bytes] | None = field(default=None, repr=False, compare=False)
    _counting: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tail": None, "_counting": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _counting=threading.Lock())

    def count(self, n: int) -> None:
        """Add ``n`` bytes to ``fetched`` (ranges are read on several threads)."""
        with self._counting:
            self.fetched += n

    @property
    def name(self) -> str:
        return self.label or shown(self.url)

    def fresh(self) -> Http:
        return Http(self.url, self.headers, self.label, self.patience)

    def probe(self) -> Body | None:
        """Ask for the archive's last bytes; a server that ignores ``Range`` sends all of it, returned to be streamed."""
        response = self._get(f"bytes=-{PROBE}")
        if response.status == 200:
            return Body(self, 0, None, response)
        first, last, total = self._content_range(response)
        self._tail = total, Body(self, first, last + 1, response).read(last + 1 - first)
        return None

    def tail(self, length: int) -> tuple[int, bytes]:
        if self._tail is None and self.probe() is not None:
            raise NetworkError("the server no longer answers range requests")
        size, data = self._tail
        return size, data[-length:]

    def open_range(self, start: int, end: int | None) -> Body:
        return Body(self, start, end)

    def meter(self) -> Meter:
        return self._session().meter

    def _session(self) -> Session:
        return session(self.url, self.patience.connect, self.patience.read)

    def _send(self, byte_range: str):
        """One GET of the URL (or where it last redirected to), following redirects by hand.

        The user's headers go only to the URL's own origin; a redirect target elsewhere gets none.
        """
        known = self._session()
        url = known.location or self.url
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"Range": byte_range, "Accept-Encoding": "identity"}
            if _origin(url) == _origin(self.url):
                headers.update(self.headers)
            response = known.pool.request("GET", url, headers=headers, redirect=False, retries=False,
                                                    preload_content=False, decode_content=False)
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                known.location = url if url != self.url else None
                return response
            _drop(response)
            url = urljoin(url, location)
        raise NetworkError(f"more than {MAX_REDIRECTS} redirects")

    def _get(self, byte_range: str):
        """A 200 or 206 answer to a GET with ``byte_range``, retrying what a retry can fix."""
        import urllib3

        failures, failure, wait = 0, "", 0.0
        while failures < self.patience.tries:
            time.sleep(wait)
            try:
                response = self._send(byte_range)
            except (urllib3.exceptions.HTTPError, OSError) as err:
                if isinstance(err, urllib3.exceptions.LocationValueError):
                    raise NetworkError(f"not a URL that can be fetched ({err})") from None
                failures, failure = failures + 1, _reason(err)
                wait = self.patience.delay(failures)
                continue
            if response.status in (200, 206):
                return response
            status = f"HTTP {response.status} {response.reason or ''}".strip()
            retry_after = response.headers.get("Retry-After", "")
            redirected = self._session().location is not None
            _drop(response)
            if response.status in RETRY or response.status >= 500:
                failures, failure = failures + 1, status
                wait = min(self.patience.longest, float(retry_after)) if retry_after.isdigit() else self.patience.delay(failures)
            elif redirected and response.status in EXPIRED:
                self._session().location, wait = None, 0.0
                failures, failure = failures + 1, status
            else:
                raise NetworkError(status, response.status)
        raise NetworkError(f"{failure} (after {self.patience.tries} tries)")

    def _content_range(self, response) -> tuple[int, int, int]:
        match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None:
            _drop(response)
            raise NetworkError("a range answer without a usable Content-Range")
        return int(match[1]), int(match[2]), int(match[3])


class Body:
    """The bytes of one range of an ``Http`` archive, read front to back across broken connections.

    When a connection breaks (or a server closes it early), the range is asked for again from
    the first byte not yet read. A server that ignores ``Range`` is read from the start and the
    bytes before that point are dropped: slower, but the same bytes.
    """

    def __init__(self, http: Http, start: int, end: int | None, response=None) -> None:
        self.http, self.at, self.end, self.response = http, start, end, response

    @property
    def fetched(self) -> int:
        """Bytes read from the archive's URL so far (by this range and every other of its ``Http``)."""
        return self.http.fetched

    def read(self, n: int) -> bytes:
        """The next ``n`` bytes; fewer only where the range (or the whole body) ends."""
        import urllib3

        if self.end is not None:
            n = max(0, min(n, self.end - self.at))
        parts, got, failures = [], 0, 0
        while got < n:
            try:
                if self.response is None:
                    self.response = self._reopen()
                data = self.response.read(min(n - got, CHUNK))
            except (urllib3.exceptions.HTTPError, OSError) as err:
                data, reason = b"", _reason(err)
            else:
                reason = "the body ended early"
                if not data and self.end is None:
                    break
            if data:
                parts.append(data)
                got += len(data)
                self.at += len(data)
                self.http.count(len(data))
                failures = 0
                continue
            self.close()
            failures += 1
            if failures >= self.http.patience.tries:
                raise NetworkError(f"{reason} at byte {self.at} (after {failures} tries)")
            time.sleep(self.http.patience.delay(failures))
        return b"".join(parts)

    def _reopen(self):
        """A response positioned at ``self.at``."""
        last = "" if self.end is None else str(self.end - 1)
        response = self.http._get(f"bytes={self.at}-{last}")
        if response.status == 206:
            first = self.http._content_range(response)[0]
            if first != self.at:
                _drop(response)
                raise NetworkError(f"asked for byte {self.at}, the server sent from byte {first}")
            return response
        skipped = 0
        while skipped < self.at:
            data = response.read(min(CHUNK, self.at - skipped))
            if not data:
                _drop(response)
                raise NetworkError(f"the body ended at byte {skipped}, before byte {self.at}")
            skipped += len(data)
            self.http.count(len(data))
        return response

    def close(self) -> None:
        """Let go of the response: its connection goes back to the pool when the range was read to its end."""
        if self.response is None:
            return
        if self.end is not None and self.at >= self.end:
            self.response.drain_conn()
            self.response.release_conn()
        else:
            _drop(self.response)
        self.response = None


def _drop(response) -> None:
    """Let go of a response without reading the rest of it (closing its connection)."""
    response.close()
    response.release_conn()
