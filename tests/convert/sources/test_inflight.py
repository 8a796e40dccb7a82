"""Ranges in flight and gaps worth merging: the plan of ranges, requests under way at once, bytes fetched, same bytes out.

The server (``zipserver.ZipServer``) waits before each answer, as a distant one does, and
records the most answers it had under way at once.
"""

from __future__ import annotations

import threading
import time
import zipfile
from pathlib import Path

import pytest
from zipserver import ZipServer

from ichprep.convert.sources import open_source
from ichprep.convert.sources.base import Input, ReadError
from ichprep.convert.sources.inflight import InFlight, Limits, Meter, Span
from ichprep.convert.sources.zipformat import Member
from ichprep.convert.sources.zipped import RUN_GAP, WASTE, Reach, ZipArchive, runs

MEMBERS = 60
SLICE = 200_000


def item(offset: int, length: int) -> Input:
    return Input(f"ID_{offset}", "zip", Member.of(f"ID_{offset}.dcm", offset, offset + length, length - 40, length - 40, 0, 0, 0))


def places(plan: list[list[Input]]) -> list[list[int]]:
    return [[i.ref.offset for i in run] for run in plan]


def test_a_gap_of_at_most_run_gap_always_joins_and_a_wider_one_never_when_a_round_trip_is_unknown():
    items = [item(0, 1000), item(1000 + RUN_GAP, 1000), item(2000 + 2 * RUN_GAP + 1, 1000)]
    assert places(list(runs(items))) == [[0, 1000 + RUN_GAP], [2000 + 2 * RUN_GAP + 1]]


def test_a_gap_cheaper_than_a_round_trip_joins_while_the_dropped_bytes_stay_within_the_waste_bound():
    size, gap = 400_000, 90_000
    items = [item(k * (size + gap), size) for k in range(6)]
    far = Reach(gap=10_000_000, most=64_000_000)
    assert gap <= WASTE * size, "the case is one the bound allows"
    assert places(list(runs(items, lambda: far))) == [[i.ref.offset for i in items]]
    near = Reach(gap=gap - 1, most=64_000_000)
    assert len(list(runs(items, lambda: near))) == 6, "a gap wider than a round trip's bytes is a request of its own"
    sparse = [item(k * (size + 3 * size), size) for k in range(6)]
    assert len(list(runs(sparse, lambda: far))) == 6, "a subset's gaps (3 members each) are never fetched, however far the server"


def test_the_bytes_dropped_inside_a_run_never_pass_the_waste_bound():
    import random

    rng = random.Random(5)
    at, items = 0, []
    for _ in range(400):
        at += rng.choice([0, 0, 20_000, 100_000, 300_000, 2_000_000])
        length = rng.randint(50_000, 600_000)
        items.append(item(at, length))
        at += length
    for run in runs(items, lambda: Reach(gap=1_000_000, most=16_000_000)):
        kept = sum(i.ref.end - i.ref.offset for i in run)
        dropped = run[-1].ref.end - run[0].ref.offset - kept
        big_gaps = sum(max(0, b.ref.offset - a.ref.end) for a, b in zip(run, run[1:]) if b.ref.offset - a.ref.end > RUN_GAP)
        assert big_gaps <= WASTE * kept + 1e-9 and dropped <= WASTE * kept + RUN_GAP * len(run)
        assert run[-1].ref.end - run[0].ref.offset <= 16_000_000 or len(run) == 1


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """60 members of 200 KB of incompressible bytes (stored): a member is a range of its own when the subset skips its neighbours."""
    import random

    path = tmp_path_factory.mktemp("zip") / "slices.zip"
    rng = random.Random(1)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for k in range(MEMBERS):
            zf.writestr(f"stage_2_train/ID_{k:04d}.dcm", rng.randbytes(SLICE))
    return path


def every_third(source: ZipArchive) -> list[Input]:
    return [i for k, i in enumerate(source.inputs()) if k % 3 == 0]


def test_a_sparse_subset_has_its_requests_in_flight_at_once_and_fetches_only_its_members(archive):
    expected = {f"ID_{k:04d}": data for k, data in enumerate(zipfile.ZipFile(archive).read(n) for n in zipfile.ZipFile(archive).namelist())}
    with ZipServer(archive, latency=0.1) as server:
        source = open_source(server.url())
        wanted = every_third(source)
        started = time.monotonic()
        got = {i.id: data for i, data in source.for_workers().read(wanted)}
        seconds = time.monotonic() - started
    assert got == {i.id: expected[i.id] for i in wanted}
    assert server.busiest >= 10, f"at most {server.busiest} requests were under way at once"
    assert seconds < 0.1 * len(wanted) / 4, f"{len(wanted)} requests of 100 ms took {seconds:.2f} s: not in flight together"
    assert server.served <= 0.4 * archive.stat().st_size, "only the subset (and the directory) is downloaded"


def test_the_parent_fetches_ahead_and_workers_read_the_same_bytes_from_their_tasks(archive):
    with ZipServer(archive, latency=0.02) as server:
        source = open_source(server.url())
        wanted = every_third(source)
        by_range = {i.id: data for i, data in source.for_workers().read(wanted)}
        ahead = source.ahead(wanted, members=4)
        carried = list(ahead)
        assert len(ahead) == len(wanted) and sorted(i.id for i in carried) == sorted(i.id for i in wanted), \
            "every input once, in the order its bytes arrived"
        assert not any(isinstance(i.ref, Member) for i in carried), "each input carries its stored bytes"
        requests = len(server.requests)
        from_tasks = {i.id: data for i, data in source.for_workers().read(carried)}
    assert from_tasks == by_range
    assert len(server.requests) == requests, "a worker given fetched members sends no request"


def test_a_range_that_fails_fails_its_members_and_the_rest_arrive_in_order():
    def open_range(start: int, end: int):
        if start == 3:
            raise ReadError("network: HTTP 503 (after 8 tries)")
        return Piece(bytes(range(start, end)))

    spans = [Span(k, k + 1, [k]) for k in range(8)]
    got = [(span.items, span.data) for span in InFlight(open_range, spans, Meter(), lambda: 2, threads=4)]
    assert [items for items, _ in got] == [[k] for k in range(8)]
    assert isinstance(got[3][1], ReadError) and [data for _, data in got if not isinstance(data, Exception)] == [
        bytes([k]) for k in range(8) if k != 3]


def test_unordered_a_span_is_handed_on_as_it_arrives_and_ordered_in_the_order_planned():
    def open_range(start: int, end: int):
        if start == 0:
            time.sleep(0.3)
        return Piece(bytes(end - start))

    def order(ordered: bool) -> list[int]:
        spans = [Span(k, k + 1, [k]) for k in range(6)]
        return [span.items[0] for span in InFlight(open_range, spans, Meter(), lambda: 100, threads=6, ordered=ordered)]

    assert order(ordered=True) == [0, 1, 2, 3, 4, 5]
    unordered = order(ordered=False)
    assert sorted(unordered) == [0, 1, 2, 3, 4, 5] and unordered[-1] == 0, "the slow first range waits for no one"


def test_the_bytes_asked_for_and_not_arrived_stay_within_the_round_trips_the_link_carries():
    asked, most, lock = [0], [0], threading.Lock()

    class Trickle(Piece):
        def read(self, n: int) -> bytes:
            time.sleep(0.001)
            piece = super().read(n)
            with lock:
                asked[0] -= len(piece)
            return piece

    def open_range(start: int, end: int):
        with lock:
            asked[0] += end - start
            most[0] = max(most[0], asked[0])
        return Trickle(bytes(end - start))

    meter = Meter()
    meter.first_byte(0.02)
    meter.rate = 100_000_000.0
    cap = meter.asked_most()
    size = 1024 * 1024
    spans = [Span(k * size, (k + 1) * size, [k]) for k in range(40)]
    assert len(list(InFlight(open_range, spans, meter, lambda: 10**12, threads=32))) == 40
    assert cap < 40 * size and size < most[0] <= cap, f"{most[0]} bytes asked for at once, the cap is {cap}"


def test_the_window_bounds_the_bytes_held_ahead_of_a_consumer_that_does_not_draw():
    held, most, lock = [0], [0], threading.Lock()

    def open_range(start: int, end: int):
        with lock:
            held[0] += end - start
            most[0] = max(most[0], held[0])
        return Piece(b"x" * (end - start))

    fetching = iter(InFlight(open_range, [Span(k * 10, k * 10 + 10, [k]) for k in range(100)], Meter(), lambda: 30, threads=8))
    next(fetching)
    time.sleep(0.2)
    assert most[0] <= 40, f"{most[0]} bytes requested with a window of 30 (one span may be in hand)"
    fetching.close()


def test_waiting_is_charged_to_round_trips_when_every_slot_is_busy_and_to_the_cpu_when_bytes_are_ready():
    def slow(start: int, end: int):
        time.sleep(0.05)
        return Piece(b"x" * (end - start))

    fetching = InFlight(slow, [Span(k, k + 1, [k]) for k in range(8)], Meter(), lambda: 1000, threads=2)
    before = Limits()
    list(fetching)
    assert fetching.limits.bound(before, 0.2) == "round trips"
    assert Limits(trips=0.001, link=0.001).bound(before, 1.0) == "CPU"
    assert Limits(link=0.5).bound(before, 1.0) == "link"


class Piece:
    """A range body over bytes in memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int) -> bytes:
        piece, self.data = self.data[:n], self.data[n:]
        return piece

    def close(self) -> None:
        """Nothing held."""
