"""Range requests kept in flight, with the round trip and the link rate measured as they arrive.

Over a real link every request waits a round trip before its first byte. Asked one after
another, a sparse ``--ids`` subset (a request a member) waits on round trips, not on the link:
at 100 ms and two requests under way, 20 slices a second whatever the link. Here up to
``IN_FLIGHT`` requests are under way at once, each on a thread of its own (they release the GIL
while they wait), and the bytes they may hold are bounded by a window: requested or fetched,
not yet consumed. Memory is that window, never more, whatever the number of members.

``Meter`` measures, per process and URL, the time to a request's first byte (the round trip)
and the bytes that arrive in each half second (the link rate, as its best half second so far);
their product, the bytes that cost as much as a round trip, decides which gaps between members
are worth fetching (``zipped.runs``), how long a range may be, how far ahead to fetch, and how
many bytes to ask for at once: enough to keep the link busy through a round trip, and no more,
because a shared link serves the requests under way side by side, so the more bytes are asked
for at once, the later the first of them (the ones the consumer waits for) arrive.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ichprep.convert.sources.base import ReadError

IN_FLIGHT = 48
"""Requests under way at once: 48 slices of 100 KB cover a 100 ms round trip at 48 MB/s (a sparse subset asks for
a slice a request), and the gaps merged and the longer ranges of a denser selection cover the rest. Measured on a
44 MB/s link at 100 ms, 32 left the link idle and 64 added CPU without speed. A fixed number rather than a guess
from the measured link: an idle thread costs nothing, and the window, not the thread count, bounds memory."""
ASKED_LEAST = 4 * 1024 * 1024
"""The fewest bytes asked for and not yet arrived that the fetchers may hold, however short the round trip."""
ASKED_TRIPS = 4
"""Bytes asked for and not yet arrived, in round trips of the link: enough that the link stays busy while new
requests wait for their first byte, few enough that a request asked now is not queued behind seconds of others."""
RANGE_LEAST = 1024 * 1024
RANGE_MOST = 16 * 1024 * 1024
"""A range holds a round trip's worth of bytes (its round trip then costs at most half its time), within these bounds."""
WINDOW_MOST = 256 * 1024 * 1024
"""The most bytes held ahead of the consumer, however fast and far the link."""
RECENT = 2.0
"""Seconds over which the progress bar judges what limits the run."""
SPAN = 0.5
"""Seconds over which the link rate is measured."""
FIRST = 64
"""Bytes of a range's first read, which returns with the first byte: its time is the round trip."""
CHUNK = 1024 * 1024


@dataclass
class Meter:
    """Round trip and link rate of one URL, as this process has measured them (thread safe)."""

    trips: deque = field(default_factory=lambda: deque(maxlen=32))
    marks: deque = field(default_factory=deque)
    in_span: int = 0
    rate: float = 0.0
    """Bytes/s: the best ``SPAN`` so far (a window that is not yet ``SPAN`` long counts as a quarter of one)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def first_byte(self, seconds: float) -> None:
        with self.lock:
            self.trips.append(seconds)

    def received(self, n: int) -> None:
        now = time.monotonic()
        with self.lock:
            self.marks.append((now, n))
            self.in_span += n
            while now - self.marks[0][0] > SPAN:
                self.in_span -= self.marks.popleft()[1]
            self.rate = max(self.rate, self.in_span / max(now - self.marks[0][0], SPAN / 4))

    @property
    def trip(self) -> float:
        """Seconds to the first byte: the least of the last 32 requests (0 before any).

        The least, as TCP's BBR takes its round trip: a request's wait also holds its queue behind
        the others on the link, which grows with the bytes asked for, which grow with this.
        """
        with self.lock:
            return min(self.trips, default=0.0)

    @property
    def round_trip_bytes(self) -> int:
        """The bytes the link carries in one round trip: a gap smaller than this costs less than a request."""
        return int(self.trip * self.rate)

    def range_most(self) -> int:
        return min(RANGE_MOST, max(RANGE_LEAST, self.round_trip_bytes))

    def asked_most(self) -> int:
        """The bytes worth having asked for and not yet received: ``ASKED_TRIPS`` round trips' worth, at least ``ASKED_LEAST``."""
        return max(ASKED_LEAST, ASKED_TRIPS * self.round_trip_bytes)


@dataclass
class Span:
    """One range to fetch and what it is for; ``error`` set (a member too large to be a slice) means it is never fetched."""

    start: int
    end: int
    items: list[Any]
    error: Exception | None = None
    data: bytes | Exception | None = None
    done: bool = False
    arrived: int = 0
    """Bytes received so far."""

    @property
    def size(self) -> int:
        return 0 if self.error is not None else self.end - self.start


WAITING = 0.1
"""The share of its time a consumer may wait for bytes before the network, not the CPU, is what limits it."""


@dataclass
class Limits:
    """Why the consumer waited: seconds waiting with every request slot busy (round trips), and otherwise (the link)."""

    trips: float = 0.0
    link: float = 0.0

    def bound(self, before: Limits, seconds: float) -> str:
        """What limited the last ``seconds`` (since ``before`` was copied): the CPU, the link, or round trips."""
        trips, link = self.trips - before.trips, self.link - before.link
        if trips + link < WAITING * seconds:
            return "CPU"
        return "round trips" if trips > link else "link"


class Watch:
    """What limited a run over its last few seconds, from its ``Limits``: for the progress bar."""

    def __init__(self, limits: Limits) -> None:
        self.limits, self.before, self.since, self.last = limits, replace(limits), time.monotonic(), ""

    def bound(self) -> str:
        """``CPU``, ``link`` or ``round trips`` (empty in the run's first seconds)."""
        now = time.monotonic()
        if now - self.since >= RECENT:
            self.last = self.limits.bound(self.before, now - self.since)
            self.before, self.since = replace(self.limits), now
        return self.last


class InFlight:
    """The bytes of ``spans``, in order, fetched up to ``IN_FLIGHT`` at a time and at most ``window()`` bytes ahead.

    Of those, at most ``meter.asked_most()`` are asked for and not yet arrived at any moment, so
    ranges arrive about in the order they are consumed. Not ``ordered``, each span is yielded as
    soon as it has arrived: a shared link serves the requests under way side by side, so a long
    range arrives after shorter ones asked later, and a consumer that needs no order (the
    parent's batches of images) never waits on one while others are ready.

    One lock, and a condition for each kind of waiter (the fetchers, the planner, the consumer),
    so that an arriving piece wakes the one thread that can act on it, not every thread: woken
    all at once, 32 fetchers cost the parent more CPU than the bytes they fetch.

    Iterate once. Stopping early (an error, Ctrl-C, a closed generator) lets the threads go; a
    request already under way finishes and is dropped.
    """

    def __init__(self, open_range: Callable[[int, int], Any], spans: Iterable[Span], meter: Meter,
                 window: Callable[[], int], threads: int = IN_FLIGHT, ordered: bool = True) -> None:
        self.open_range, self.spans, self.meter, self.window = open_range, spans, meter, window
        self.threads, self.ordered = threads, ordered
        lock = threading.Lock()
        self.work = threading.Condition(lock)
        """Fetchers wait here for a span to fetch."""
        self.room = threading.Condition(lock)
        """The planner waits here for room in the window and in the bytes asked for."""
        self.ready = threading.Condition(lock)
        """The consumer waits here for the next span in order."""
        self.order: deque[Span] = deque()
        """Spans planned and not yet consumed, in plan order (``ordered``), or fetched and not yet consumed, as they came."""
        self.pending = 0
        """Spans planned and not yet consumed."""
        self.queue: deque[Span] = deque()
        self.held = 0
        self.asked = 0
        """Bytes of the spans handed to the fetchers that have not arrived yet."""
        self.busy = 0
        self.planned = False
        self.stopped = False
        self.failure: BaseException | None = None
        self.limits = Limits()

    def __iter__(self) -> Iterator[Span]:
        pool = [threading.Thread(target=self._fetcher, daemon=True) for _ in range(self.threads)]
        for thread in [threading.Thread(target=self._feed, daemon=True), *pool]:
            thread.start()
        try:
            while True:
                span = self._next()
                if span is None:
                    return
                try:
                    yield span
                finally:
                    with self.room:
                        self.held -= span.size
                        self.room.notify()
        finally:
            with self.work:
                self.stopped = True
                self.work.notify_all()
                self.room.notify_all()

    def _next(self) -> Span | None:
        """The next span once fetched; None after the last. Time spent waiting is charged to what limited it."""
        with self.ready:
            started = time.monotonic()
            starved = False
            while not (self.order and self.order[0].done) and not (self.planned and not self.pending) and self.failure is None:
                starved = starved or self.busy >= self.threads
                self.ready.wait()
            waited = time.monotonic() - started
            if starved:
                self.limits.trips += waited
            else:
                self.limits.link += waited
            if self.failure is not None:
                raise self.failure
            if not self.pending:
                return None
            self.pending -= 1
            return self.order.popleft()

    def _feed(self) -> None:
        """Plan spans and hand them to the fetchers while the window has room (one at least, however long)."""
        try:
            for span in self.spans:
                with self.room:
                    while self.held and not self.stopped and not self._room(span.size):
                        self.room.wait()
                    if self.stopped:
                        return
                    self.held += span.size
                    self.asked += span.size
                    self.pending += 1
                    if span.error is not None:
                        span.done = True
                        self.order.append(span)
                        self.ready.notify()
                    else:
                        if self.ordered:
                            self.order.append(span)
                        self.queue.append(span)
                        self.work.notify()
        except BaseException as err:  # the consumer raises it: a failure in the plan must not hang the run
            with self.ready:
                self.failure = err
                self.ready.notify()
        with self.work:
            self.planned = True
            self.work.notify_all()
            self.ready.notify()

    def _room(self, size: int) -> bool:
        """Whether a span of ``size`` bytes fits the window, and the bytes asked for (one span at least)."""
        return self.held + size <= self.window() and (not self.asked or self.asked + size <= self.meter.asked_most())

    def _arrived(self, n: int) -> None:
        with self.room:
            self.asked -= n
            self.room.notify()

    def _fetcher(self) -> None:
        while True:
            with self.work:
                while not self.queue and not self.stopped and not self.planned:
                    self.work.wait()
                if self.stopped or not self.queue:
                    return
                span = self.queue.popleft()
                self.busy += 1
            data = self._fetch(span)
            with self.ready:
                self.asked -= span.size - span.arrived
                span.data, span.done = data, True
                if not self.ordered:
                    self.order.append(span)
                self.busy -= 1
                self.ready.notify()
                self.room.notify()

    def _fetch(self, span: Span) -> bytes | Exception:
        """The span's bytes, or the error that ended its range (after the reader's own retries)."""
        started = time.monotonic()
        try:
            body = self.open_range(span.start, span.end)
        except (ReadError, OSError) as err:
            return err
        try:
            parts, got = [], 0
            while got < span.size:
                piece = body.read(min(FIRST if not parts else CHUNK, span.size - got))
                if not piece:
                    raise ReadError(f"the archive ends {span.size - got} bytes early: cut short, or its directory is wrong")
                if not parts:
                    self.meter.first_byte(time.monotonic() - started)
                parts.append(piece)
                got += len(piece)
                self.meter.received(len(piece))
                span.arrived += len(piece)
                self._arrived(len(piece))
            return b"".join(parts)
        except (ReadError, OSError) as err:
            return err
        finally:
            body.close()
