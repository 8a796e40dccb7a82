"""Bad and hostile inputs: each gets its documented outcome, none stops a run or writes outside OUT.

The cases live in ``tests/badinput.py`` (docs/hardening.md tabulates them). Each is checked
one by one through ``convert_one`` and all together through ``convert`` and the CLI, since a
file that only misbehaves next to others (a shared table cache, a worker state) would pass
the first kind of test alone.
"""

from __future__ import annotations

import os
import resource
import threading
import tracemalloc
import zipfile
from pathlib import Path

import badinput
import cv2
import numpy as np
import pandas as pd
import pytest
from cli_run import ichprep

import ichprep.convert as convert
from ichprep.convert import sources
from ichprep.settings import Settings


def run_one(case: badinput.Case, tmp_path: Path, size: int = 64, crop: bool = True) -> dict:
    """The manifest row of the case's file, its image written into ``tmp_path``."""
    return badinput.convert_file(case.write(tmp_path), size, crop)


def rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} does not decode"
    return image[..., ::-1]


def stored_ids(out: Path, fmt: str) -> set[str]:
    """Ids with an image in OUT: PNG file names, or the ids datasets of the HDF5 shards."""
    if fmt == "png":
        return {p.stem for p in out.glob("*.png")}
    import h5py

    ids: list[str] = []
    for shard in out.glob("shard-*.h5"):
        with h5py.File(shard, "r") as fh:
            ids += [i.decode() for i in fh["ids"][:]]
    assert len(ids) == len(set(ids))
    return set(ids)


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.mark.parametrize("case", badinput.CASES, ids=lambda c: c.name)
def test_convert_one_gives_each_case_its_documented_outcome(case: badinput.Case, tmp_path: Path) -> None:
    row = run_one(case, tmp_path)
    assert row["status"] == case.outcome, row["error"]
    if case.outcome == "failed":
        assert case.reason in row["error"]
        assert "\n" not in row["error"] and len(row["error"]) < 400
        assert not (tmp_path / f"{case.name}.png").exists()
    else:
        assert row["error"] is None
        assert rgb(tmp_path / f"{case.name}.png").shape == (64, 64, 3)


@pytest.mark.parametrize("fmt", ["png", "hdf5"])
def test_a_run_over_every_case_records_each_and_writes_images_only_for_the_good_ones(fmt: str, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for case in badinput.CASES:
        case.write(src)

    result = convert.convert(src, out, Settings(format=fmt), options=convert.Options(jobs=1, quiet=True))

    table = pd.read_parquet(out / "manifest.parquet").set_index("id")
    assert sorted(table.index) == sorted(c.name for c in badinput.CASES)
    for case in badinput.CASES:
        assert table.loc[case.name, "status"] == case.outcome, (case.name, table.loc[case.name, "error"])
        if case.outcome == "failed":
            assert case.reason in table.loc[case.name, "error"]
    ok = {c.name for c in badinput.CASES if c.outcome == "ok"}
    assert stored_ids(out, fmt) == ok
    assert (result.converted, result.failed) == (len(ok), len(badinput.CASES) - len(ok))
    assert {p.name for p in tmp_path.iterdir()} == {"src", "out"}


def test_the_cli_names_every_failure_on_stderr_and_exits_1(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    failing = [c for c in badinput.CASES if c.outcome == "failed"]
    for case in failing + [badinput.case("valid")]:
        case.write(src)

    result = ichprep("convert", str(src), str(tmp_path / "out"), "--jobs", "1", "--quiet")

    assert result.exit_code == 1, result.output
    assert f"1 converted, {len(failing)} failed" in result.stdout
    for case in failing:
        line = next(line for line in result.stderr.splitlines() if f"{case.name}.dcm:" in line)
        assert case.reason in line


def converted_with_peak(path: Path) -> tuple[dict, int]:
    """The file's manifest row and the peak bytes Python and numpy allocated while converting it."""
    tracemalloc.start()
    try:
        row = badinput.convert_file(path)
        return row, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", ["huge_dimensions", "large_dimensions_tiny_data", "pixel_length_past_eof"])
def test_lying_sizes_fail_or_convert_without_allocating_what_they_claim(name: str, tmp_path: Path) -> None:
    case = badinput.case(name)
    path = case.write(tmp_path)
    badinput.convert_file(path)  # warm caches (renderer tables), so only the file's own cost is measured
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row, peak = converted_with_peak(path)
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024

    assert row["status"] == case.outcome, row["error"]
    assert peak < 8 * 2**20, f"peak Python/numpy allocation {peak / 2**20:.1f} MB"
    assert rss_growth_mb < 50


def test_an_8_bit_slice_converts_to_the_window_formula_of_its_values(tmp_path: Path, reference) -> None:
    row = run_one(badinput.case("bits_allocated_8"), tmp_path, size=badinput.SIDE, crop=False)

    hu = badinput.bits8_pixels().astype(np.float64) * 8 - 1024
    got = rgb(tmp_path / "bits_allocated_8.png").astype(int)
    assert row["status"] == "ok"
    assert np.abs(got - reference.window_u8(hu)).max() <= 1
    assert row["img_max"] == 255 and row["img_min"] == 0


@pytest.mark.parametrize("name", ["bits_allocated_32", "monochrome1", "big_endian", "implicit_vr"])
def test_variants_of_the_same_pixels_convert_to_the_same_image(name: str, tmp_path: Path) -> None:
    """32-bit storage, MONOCHROME1 (HU windows ignore the display polarity) and other byte layouts."""
    run_one(badinput.case("valid"), tmp_path)
    row = run_one(badinput.case(name), tmp_path)

    assert row["status"] == "ok", row["error"]
    assert np.array_equal(rgb(tmp_path / f"{name}.png"), rgb(tmp_path / "valid.png"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("latin1_patient_name", "Müller^Jürgen"), ("undeclared_latin1_patient_name", "Gonçalves^Zoë"), ("bad_character_set", "Doe^John")],
)
def test_non_utf8_text_converts_and_reaches_the_manifest(name: str, expected: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    badinput.case(name).write(src)

    convert.convert(src, tmp_path / "out", options=convert.Options(jobs=1, quiet=True))

    table = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert table.loc[0, "status"] == "ok"
    assert table.loc[0, "PatientName"] == expected


@pytest.mark.parametrize("member", ["../../x.dcm", "/abs/x.dcm"])
def test_a_zip_member_with_a_hostile_path_is_written_inside_out_by_its_id(member: str, tmp_path: Path) -> None:
    nest = tmp_path / "a" / "b"
    nest.mkdir(parents=True)
    archive = nest / "train.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, badinput.valid())
    before = files_under(tmp_path)

    convert.convert(archive, nest / "out", options=convert.Options(jobs=1, quiet=True))

    created = files_under(tmp_path) - before
    assert all(nest / "out" in p.parents or p == nest / "out" for p in created), created
    assert not (tmp_path / "x.dcm").exists() and not Path("/abs").exists()
    table = pd.read_parquet(nest / "out" / "manifest.parquet")
    assert table[["id", "status", "source"]].values.tolist() == [["x", "ok", f"{archive}!{member}"]]
    assert rgb(nest / "out" / "x.png").shape == (256, 256, 3)


def test_a_symlink_loop_in_the_source_folder_does_not_trap_the_walk(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "series").mkdir(parents=True)
    badinput.case("valid").write(src / "series")
    os.symlink(src, src / "series" / "loop")
    os.symlink(src / "series" / "loop", src / "loop2")
    found: list = []
    walker = threading.Thread(target=lambda: found.extend(sources.discover(src)), daemon=True)

    walker.start()
    walker.join(timeout=10)

    assert not walker.is_alive(), "discovery did not terminate on a symlink loop"
    assert [i.id for i in found] == ["valid"]
    result = convert.convert(src, tmp_path / "out", options=convert.Options(jobs=1, quiet=True))
    assert (result.converted, result.failed) == (1, 0)


def test_a_file_larger_than_any_slice_fails_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.dcm"
    with open(big, "wb") as fh:
        fh.truncate(sources.MAX_FILE_BYTES + 1)  # sparse: no disk or memory used
    row, peak = converted_with_peak(big)

    assert row["status"] == "failed" and "larger than any CT slice" in row["error"]
    assert peak < 2**20


def test_a_fifo_or_device_among_the_inputs_fails_instead_of_hanging_the_run(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    badinput.case("valid").write(src)
    os.mkfifo(src / "pipe.dcm")
    os.mkfifo(src / "pipe_without_suffix")
    (src / "zero.dcm").symlink_to("/dev/zero")
    results: list = []
    run = threading.Thread(
        target=lambda: results.append(convert.convert(src, tmp_path / "out", options=convert.Options(jobs=1, quiet=True))), daemon=True
    )

    run.start()
    run.join(timeout=30)

    assert not run.is_alive(), "the run blocked on a FIFO or an endless device"
    table = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("id")
    assert sorted(table.index) == ["pipe", "valid", "zero"]
    assert table.loc["valid", "status"] == "ok"
    for name in ("pipe", "zero"):
        assert table.loc[name, "status"] == "failed" and "not a regular file" in table.loc[name, "error"]


def test_zip_members_whose_names_make_no_safe_file_name_fail_and_write_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for member in ("a/..dcm", "b/.dcm", "-rf.dcm", "ok.dcm"):
            zf.writestr(member, badinput.valid())

    convert.convert(archive, tmp_path / "out", options=convert.Options(jobs=1, quiet=True))

    table = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("source")
    assert table.loc[f"{archive}!ok.dcm", "status"] == "ok"
    for member in ("a/..dcm", "b/.dcm", "-rf.dcm"):
        assert "unsafe image id" in table.loc[f"{archive}!{member}", "error"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["ok.png"]


def test_a_corrupted_zip_member_fails_alone(tmp_path: Path) -> None:
    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("bad.dcm", badinput.valid())
        zf.writestr("good.dcm", badinput.valid())
    data = bytearray(archive.read_bytes())
    data[data.index(b"DICM") + 200] ^= 0xFF  # inside the first member: its CRC no longer matches
    archive.write_bytes(bytes(data))

    result = convert.convert(archive, tmp_path / "out", options=convert.Options(jobs=1, quiet=True))

    table = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("id")
    assert (result.converted, result.failed) == (1, 1)
    assert table.loc["good", "status"] == "ok"
    assert "CRC" in table.loc["bad", "error"]


@pytest.mark.parametrize(
    ("name", "syntax"), [("jpeg_baseline", "JPEG Baseline (Process 1)"), ("jpeg_2000", "JPEG 2000 Image Compression (Lossless Only)")]
)
def test_compressed_data_without_any_decoder_installed_fails_naming_the_transfer_syntax(
    name: str, syntax: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

    decoder = get_decoder(JPEGBaseline8Bit if name == "jpeg_baseline" else JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})  # as on a machine without Pillow, pylibjpeg or GDCM

    row = run_one(badinput.case(name), tmp_path)

    assert row["status"] == "failed"
    assert row["error"].startswith(f"cannot decode pixel data ({syntax}): ")
    assert "missing dependencies" in row["error"] and "\n" not in row["error"]
