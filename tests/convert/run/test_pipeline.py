"""`ichprep convert` end to end: images, manifest, exit codes, failures, resume, locking, parallel runs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from cli_run import ichprep
from pydicom.uid import ImplicitVRLittleEndian, RLELossless

from ichprep.convert import sources
from ichprep.convert.read import dicom
from ichprep.convert.render.renderer import Renderer
from ichprep.convert.run import pipeline, plan, resume
from ichprep.convert.run.pipeline import Options
from ichprep.errors import IchprepError
from ichprep.settings import Settings
from ichprep.windows import parse_windows

REPO = Path(__file__).resolve().parents[3]
SIDE = 64


def stored_head(intercept: float, dtype, seed: int) -> np.ndarray:
    """Stored values of a noisy ellipse head with a bone rim in air, for a given intercept."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    r = ((yy - 28) / 22.0) ** 2 + ((xx - 32) / 20.0) ** 2
    hu = np.where(r <= 1.0, 1100.0, -1000.0)
    hu[r <= 0.75] = 38.0
    hu += rng.normal(0.0, 25.0, hu.shape)
    return np.clip(np.round(hu - intercept), np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


QUIRK = np.mod(np.clip(stored_head(0.0, np.int16, 4), -1000, 3000).astype(np.int64), 4096).astype(np.uint16)
"""The signed-as-unsigned bug: HU (>= -1000, as the fix assumes) stored modulo 4096 with intercept 0."""
KINDS = {
    "ID_0000000a1": (stored_head(-1024.0, np.uint16, 1), dict(bits_stored=12, intercept=-1024.0)),
    "ID_0000000a2": (stored_head(-1000.0, np.uint16, 2), dict(bits_stored=12, intercept=-1000.0)),
    "ID_0000000a3": (stored_head(0.0, np.int16, 3), dict(intercept=0.0)),
    "ID_0000000a4": (QUIRK, dict(bits_stored=12, intercept=0.0)),
    "ID_0000000a5": (stored_head(-1024.0, np.uint16, 5), dict(bits_stored=12, syntax=RLELossless)),
    "ID_0000000a6": (stored_head(-1024.0, np.int16, 6), dict(syntax=ImplicitVRLittleEndian)),
    "ID_0000000a7": (stored_head(-1024.0, np.uint16, 7), dict(bits_stored=12, preamble=False)),
}


def reference_hu(raw: np.ndarray, header: dict) -> np.ndarray:
    intercept, slope = header.get("intercept", -1024.0), header.get("slope", 1.0)
    if raw.dtype == np.uint16 and header.get("bits_stored") == 12 and intercept > -100:
        return (np.mod(raw.astype(np.int64) + 1000, 4096) - 1000).astype(np.float64)
    return (raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)).astype(np.float64)


@pytest.fixture
def src(tmp_path: Path, make_ct) -> Path:
    """A folder of generated slices of every kind, one per id in KINDS."""
    root = tmp_path / "src"
    root.mkdir()
    for k, (image_id, (raw, header)) in enumerate(KINDS.items()):
        (root / f"{image_id}.dcm").write_bytes(make_ct(raw, sop=f"1.2.826.0.1.3680043.8.498.{k + 10}", **header))
    return root


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return image[..., ::-1]


def quiet(jobs: int = 1, **settings) -> tuple[Settings, Options]:
    """Settings and quiet run options for ``convert(src, out, *quiet(...))``."""
    return Settings(**settings), Options(jobs=jobs, quiet=True)


def run_cli(*args: str):
    return ichprep("convert", *args)


def outputs(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".png", ".jpg")}


def test_cli_no_crop_png_is_the_window_formula_exactly(src, tmp_path, reference):
    out = tmp_path / "out"
    result = run_cli(src, out, "--no-crop", "--size", SIDE, "--jobs", 1, "--quiet")
    assert result.exit_code == 0, result.output
    assert f"{len(KINDS)} converted, 0 failed" in result.stdout
    assert sorted(outputs(out)) == sorted(f"{i}.png" for i in KINDS)
    for image_id, (raw, header) in KINDS.items():
        np.testing.assert_array_equal(read_rgb(out / f"{image_id}.png"), reference.window_u8(reference_hu(raw, header)), err_msg=image_id)


def test_default_settings_crop_and_resize_to_256_within_one_level(src, tmp_path, reference):
    out = tmp_path / "out"
    assert pipeline.convert(src, out, *quiet()).converted == len(KINDS)
    renderer = Renderer(parse_windows("brain,subdural,bone"))
    for image_id, (raw, header) in KINDS.items():
        image = read_rgb(out / f"{image_id}.png")
        assert image.shape == (256, 256, 3)
        square = renderer.square(dicom.decode(dicom.parse((src / f"{image_id}.dcm").read_bytes())))
        expected = reference.resampled(reference_hu(raw, header), square, 256)
        diff = np.abs(image.astype(int) - expected)
        assert diff.max() <= 1 and np.mean(diff == 0) >= 0.99, image_id


def test_real_files_convert_to_the_window_formula(real_files, tmp_path, reference):
    picks = real_files[::14]
    listing = tmp_path / "real.txt"
    listing.write_text("\n".join(str(p) for p in picks))
    out = tmp_path / "out"
    assert pipeline.convert(listing, out, *quiet(crop=False, size=512)).converted == len(picks)
    for path in picks:
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float32) * np.float32(ds.RescaleSlope) + np.float32(ds.RescaleIntercept)
        np.testing.assert_array_equal(read_rgb(out / f"{path.stem}.png"), reference.window_u8(hu), err_msg=path.name)


def test_jpeg_output_is_444_and_close_to_the_png(src, tmp_path):
    png, jpg = tmp_path / "png", tmp_path / "jpg"
    pipeline.convert(src, png, *quiet(crop=False, size=SIDE))
    assert pipeline.convert(src, jpg, *quiet(crop=False, size=SIDE, format="jpg")).converted == len(KINDS)
    assert sorted(outputs(jpg)) == sorted(f"{i}.jpg" for i in KINDS)
    for image_id in KINDS:
        data = (jpg / f"{image_id}.jpg").read_bytes()
        sof = data.find(b"\xff\xc0")
        assert sof > 0 and data[sof + 9] == 3
        assert [data[sof + 11 + 3 * c] for c in range(3)] == [0x11, 0x11, 0x11]
        assert np.abs(read_rgb(jpg / f"{image_id}.jpg").astype(int) - read_rgb(png / f"{image_id}.png")).mean() < 3


def reference_stats(raw: np.ndarray, header: dict) -> dict[str, float]:
    values = raw.astype(np.float64)
    hu = values * header.get("slope", 1.0) + header.get("intercept", -1024.0)
    return {
        "img_min": values.min(),
        "img_max": values.max(),
        "img_mean": values.mean(),
        "img_std": values.std(),
        "img_pct_window": np.mean((hu > 0) & (hu < 80)),
    }


def test_manifest_has_one_row_per_input_with_header_fix_header_and_stats(src, tmp_path):
    out = tmp_path / "out"
    pipeline.convert(src, out, *quiet(size=32))
    table = pd.read_parquet(out / "manifest.parquet").set_index("id")
    assert sorted(table.index) == sorted(KINDS)
    for column in ["source", "status", "error", "header_fix", "fname", "SOPInstanceUID", "PatientID", "StudyInstanceUID",
                   "SeriesInstanceUID", "ImagePositionPatient", "ImagePositionPatient1", "ImagePositionPatient2",
                   "RescaleIntercept", "BitsStored", "PixelRepresentation", "Rows", "Columns", "img_min", "img_max",
                   "img_mean", "img_std", "img_pct_window"]:
        assert column in table.columns, column
    assert (table["status"] == "ok").all() and table["error"].isna().all()
    assert table["header_fix"].to_dict() == {i: i == "ID_0000000a4" for i in KINDS}
    for image_id, (raw, header) in KINDS.items():
        row = table.loc[image_id]
        assert row["source"] == row["fname"] == str(src / f"{image_id}.dcm")
        assert row["Rows"] == SIDE and row["Columns"] == SIDE
        stats = {k: row[k] for k in reference_stats(raw, header)}
        assert stats == pytest.approx(reference_stats(raw, header), rel=1e-9, abs=1e-12), image_id
    settings = json.loads((out / "ichprep.json").read_text())
    described = [(c["name"], c["level"], c["width"]) for c in settings["channels"]]
    assert described == [("brain", 40, 80), ("subdural", 80, 200), ("bone", 600, 2800)]
    assert (settings["size"], settings["crop"], settings["format"]) == (32, True, "png")


@pytest.fixture
def broken(src: Path, make_ct) -> dict[str, str]:
    """Bad inputs added to the source folder: file name -> a word its error line must contain."""
    good = make_ct(KINDS["ID_0000000a1"][0], bits_stored=12)
    (src / "ID_truncated.dcm").write_bytes(good[: len(good) // 2])
    (src / "ID_empty.dcm").write_bytes(b"")
    (src / "ID_text.dcm").write_text("patient notes, not an image\n" * 10)
    (src / "ID_nopixels.dcm").write_bytes(make_ct(KINDS["ID_0000000a1"][0], bits_stored=12, with_pixels=False, sop="1.2.3.77"))
    (src / "ID_toobig.dcm").write_bytes(make_ct(KINDS["ID_0000000a1"][0], bits_stored=12, rows=256, columns=256, sop="1.2.3.78"))
    return {
        "ID_truncated.dcm": "",
        "ID_empty.dcm": "empty",
        "ID_text.dcm": "dicom",
        "ID_nopixels.dcm": "pixel data",
        "ID_toobig.dcm": "truncated",
    }


def test_bad_inputs_fail_one_line_each_exit_1_and_keep_their_manifest_rows(src, broken, tmp_path):
    out = tmp_path / "out"
    result = run_cli(src, out, "--jobs", 1, "--quiet", "--size", 32)
    assert result.exit_code == 1, result.output
    assert f"{len(KINDS)} converted, {len(broken)} failed" in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == len(broken), lines
    for name, word in broken.items():
        (line,) = [line for line in lines if str(src / name) in line]
        assert word.lower() in line.lower() and len(line) > len(str(src / name)) + 5, line
    table = pd.read_parquet(out / "manifest.parquet").set_index("id")
    assert len(table) == len(KINDS) + len(broken)
    failed = table[table["status"] == "failed"]
    assert sorted(failed.index) == sorted(Path(n).stem for n in broken)
    assert failed["error"].notna().all() and failed["img_pct_window"].isna().all()
    assert table.loc["ID_nopixels", "SOPInstanceUID"] == "1.2.3.77"
    assert table.loc["ID_toobig", "Rows"] == 256
    assert sorted(outputs(out)) == sorted(f"{i}.png" for i in KINDS)


@pytest.mark.parametrize(
    "args, word",
    [
        (["--windows", "brain,nonsense"], "windows"),
        (["--windows", "40/0"], "windows"),
        (["--format", "gif"], "format"),
        (["--size", "0"], "size"),
    ],
)
def test_usage_errors_exit_2_with_one_line_and_convert_nothing(src, tmp_path, args, word):
    out = tmp_path / "out"
    result = run_cli(src, out, "--jobs", 1, "--quiet", *args)
    assert result.exit_code == 2, result.output
    assert word in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists() or not outputs(out)


def test_missing_source_exits_2(tmp_path):
    result = run_cli(tmp_path / "absent", tmp_path / "out", "--quiet")
    assert result.exit_code == 2
    assert "absent" in result.stderr


def test_second_run_skips_everything_and_a_run_after_deleting_two_redoes_them(src, tmp_path):
    out = tmp_path / "out"
    first = pipeline.convert(src, out, *quiet(size=32))
    assert (first.converted, first.skipped) == (len(KINDS), 0)
    before = {name: (out / name).stat().st_mtime_ns for name in outputs(out)}
    again = pipeline.convert(src, out, *quiet(size=32))
    assert (again.converted, again.failed, again.skipped) == (0, 0, len(KINDS))
    deleted = ["ID_0000000a2.png", "ID_0000000a6.png"]
    for name in deleted:
        (out / name).unlink()
    redo = pipeline.convert(src, out, *quiet(size=32))
    assert (redo.converted, redo.skipped) == (2, len(KINDS) - 2)
    after = {name: (out / name).stat().st_mtime_ns for name in outputs(out)}
    assert sorted(after) == sorted(before)
    assert [n for n in after if after[n] != before[n]] == deleted
    table = pd.read_parquet(out / "manifest.parquet")
    assert len(table) == len(KINDS) and (table["status"] == "ok").all()


def test_failed_inputs_are_retried_on_resume(src, tmp_path, make_ct):
    out = tmp_path / "out"
    (src / "ID_later.dcm").write_bytes(b"")
    assert pipeline.convert(src, out, *quiet(size=32), say=lambda line: None).failed == 1
    (src / "ID_later.dcm").write_bytes(make_ct(KINDS["ID_0000000a1"][0], bits_stored=12))
    again = pipeline.convert(src, out, *quiet(size=32))
    assert (again.converted, again.failed, again.skipped) == (1, 0, len(KINDS))
    assert pd.read_parquet(out / "manifest.parquet").set_index("id").loc["ID_later", "status"] == "ok"


def test_stale_temporary_files_are_removed_and_never_counted(src, tmp_path):
    out = tmp_path / "out"
    pipeline.convert(src, out, *quiet(size=32))
    stale = [out / ".ID_0000000a1.png.tmp123", out / ".ID_zzz.png.tmp9", out / ".manifest.parquet.tmp77"]
    for path in stale:
        path.write_bytes(b"half an image")
    (out / "ID_0000000a3.png").unlink()
    result = pipeline.convert(src, out, *quiet(size=32))
    assert (result.converted, result.skipped) == (1, len(KINDS) - 1)
    assert not any(path.exists() for path in stale)
    assert sorted(outputs(out)) == sorted(f"{i}.png" for i in KINDS)
    assert len(pd.read_parquet(out / "manifest.parquet")) == len(KINDS)


@pytest.mark.parametrize("args", [["--size", "48"], ["--no-crop"], ["--windows", "brain,soft,bone"], ["--format", "jpg"]])
def test_changed_settings_into_the_same_output_are_refused(src, tmp_path, args):
    out = tmp_path / "out"
    assert run_cli(src, out, "--jobs", 1, "--quiet", "--size", 32).exit_code == 0
    before = outputs(out)
    result = run_cli(src, out, "--jobs", 1, "--quiet", "--size", 32, *args)
    assert result.exit_code == 2, result.output
    assert "settings" in result.stderr
    assert outputs(out) == before


def test_a_second_run_on_a_locked_output_is_refused(src, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with resume.locked(out):
        with pytest.raises(IchprepError, match="another ichprep run"):
            pipeline.convert(src, out, *quiet(size=32))
        result = run_cli(src, out, "--jobs", 1, "--quiet")
        assert result.exit_code == 2 and "another ichprep run" in result.stderr
    assert not outputs(out)
    assert pipeline.convert(src, out, *quiet(size=32)).converted == len(KINDS)


def test_two_jobs_write_the_same_bytes_as_one(src, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    pipeline.convert(src, one, *quiet(size=48, jobs=1))
    assert pipeline.convert(src, two, *quiet(size=48, jobs=2)).converted == len(KINDS)
    assert outputs(one) == outputs(two) and len(outputs(one)) == len(KINDS)
    left = pd.read_parquet(one / "manifest.parquet").sort_values("id").reset_index(drop=True)
    right = pd.read_parquet(two / "manifest.parquet").sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(left.drop(columns=["source", "fname"]), right.drop(columns=["source", "fname"]))


def test_zip_members_convert_in_place_named_by_their_stem(src, tmp_path):
    archive = tmp_path / "rsna.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(src.iterdir()):
            zf.write(path, f"rsna-intracranial-hemorrhage-detection/stage_2_train/{path.name}")
    out, folder = tmp_path / "out", tmp_path / "folder"
    assert pipeline.convert(archive, out, *quiet(size=32)).converted == len(KINDS)
    pipeline.convert(src, folder, *quiet(size=32))
    assert outputs(out) == outputs(folder)
    table = pd.read_parquet(out / "manifest.parquet").set_index("id")
    assert table.loc["ID_0000000a1", "source"] == f"{archive}!rsna-intracranial-hemorrhage-detection/stage_2_train/ID_0000000a1.dcm"


@pytest.mark.parametrize("kind", ["txt", "csv", "parquet"])
def test_ids_restrict_the_run(src, tmp_path, kind):
    wanted = ["ID_0000000a2", "ID_0000000a5"]
    path = tmp_path / f"ids.{kind}"
    if kind == "txt":
        path.write_text("\n".join(wanted) + "\n")
    elif kind == "csv":
        pd.DataFrame({"SOPInstanceUID": wanted, "any": [0, 1]}).to_csv(path, index=False)
    else:
        pd.DataFrame({"SOPInstanceUID": wanted, "fold": ["train", "valid"]}).to_parquet(path)
    out = tmp_path / "out"
    result = run_cli(src, out, "--ids", path, "--jobs", 1, "--quiet", "--size", 32)
    assert result.exit_code == 0, result.output
    assert sorted(outputs(out)) == [f"{i}.png" for i in wanted]
    assert sorted(pd.read_parquet(out / "manifest.parquet")["id"]) == wanted


def snapshot(root: Path, skip: Path) -> set[Path]:
    return {p for p in root.rglob("*") if skip not in p.parents and p != skip}


def test_unsafe_ids_fail_cleanly_and_nothing_is_written_outside_out(tmp_path, make_ct):
    data = make_ct(KINDS["ID_0000000a1"][0], bits_stored=12)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    for name in ["x.dcm", "..dcm", "...dcm", "-.dcm", ".hidden.dcm", "ok.dcm"]:
        (deep / name).write_bytes(data)
    listing = deep / "list.txt"
    listing.write_text("../../a/b/x.dcm\n..dcm\n...dcm\n-.dcm\n.hidden.dcm\nok.dcm\n")
    out = tmp_path / "a" / "b" / "out"
    before = snapshot(tmp_path, out)
    errors: list[str] = []
    result = pipeline.convert(listing, out, *quiet(size=32), say=errors.append)
    assert (result.converted, result.failed) == (2, 4)
    assert sorted(outputs(out)) == ["ok.png", "x.png"]
    assert snapshot(tmp_path, out) == before
    assert len(errors) == 4 and all("unsafe" in e for e in errors)
    table = pd.read_parquet(out / "manifest.parquet")
    assert sorted(table["id"]) == sorted([".", "..", "-", ".hidden", "ok", "x"])
    assert table.set_index("id").loc["..", "status"] == "failed"


def test_duplicate_ids_fail_the_second_input(src, tmp_path, make_ct):
    (src / "again").mkdir()
    (src / "again" / "ID_0000000a1.dcm").write_bytes(make_ct(KINDS["ID_0000000a2"][0], bits_stored=12))
    errors: list[str] = []
    result = pipeline.convert(src, tmp_path / "out", *quiet(size=32), say=errors.append)
    assert (result.converted, result.failed) == (len(KINDS), 1)
    assert len(errors) == 1 and "duplicate" in errors[0]
    table = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert (table["id"] == "ID_0000000a1").sum() == 2, "both inputs of the id keep their row"

    before = (tmp_path / "out" / "manifest.parquet").stat().st_mtime_ns
    again = pipeline.convert(src, tmp_path / "out", *quiet(size=32), say=errors.append)
    assert (again.converted, again.failed, again.skipped) == (0, 1, len(KINDS)), "the refusal is reported again"
    assert len(errors) == 2 and "duplicate" in errors[1]
    assert (tmp_path / "out" / "manifest.parquet").stat().st_mtime_ns == before, "a refusal already recorded is not written again"


def fastai_freqhist_bins(values: np.ndarray, n_bins: int = 100) -> np.ndarray:
    """fastai's freqhist_bins in torch's float32 arithmetic (see test_windows)."""
    ordered = np.sort(np.asarray(values, dtype=np.float32).ravel())
    middle = np.arange(n_bins, dtype=np.float32) / np.float32(n_bins) + np.float32(1 / 2 / n_bins)
    t = np.concatenate([np.array([0.001], np.float32), middle, np.array([0.999], np.float32)])
    return np.unique(ordered[(np.float32(len(ordered)) * t).astype(np.int64)]).astype(np.float64)


def test_fastai_preset_uses_freqhist_breaks_of_the_pooled_sample(src, tmp_path, reference):
    out = tmp_path / "out"
    assert pipeline.convert(src, out, *quiet(windows="fastai", crop=False, size=SIDE)).converted == len(KINDS)
    settings = json.loads((out / "ichprep.json").read_text())
    assert [c["name"] for c in settings["channels"]] == ["brain", "fastai_subdural", "freqhist"]
    pooled = np.concatenate([reference_hu(*KINDS[i])[::2, ::2].ravel() for i in sorted(KINDS)])
    breaks = fastai_freqhist_bins(pooled)
    np.testing.assert_array_equal(settings["channels"][2]["breaks"], breaks)
    for image_id, (raw, header) in KINDS.items():
        hu = reference_hu(raw, header)
        image = read_rgb(out / f"{image_id}.png")
        np.testing.assert_array_equal(image[..., :2], reference.window_u8(hu, [(40, 80), (100, 254)]))
        unit = np.interp(hu, breaks, np.linspace(0.0, 1.0, len(breaks)))
        np.testing.assert_array_equal(image[..., 2], np.floor(unit * 255.0 + 0.5).astype(np.uint8))


def test_scan_returns_the_manifest_rows_and_writes_nothing(src, broken, tmp_path):
    before = snapshot(tmp_path, tmp_path / "none")
    table = pipeline.scan(src, jobs=1).set_index("id")
    assert snapshot(tmp_path, tmp_path / "none") == before
    assert len(table) == len(KINDS) + len(broken)
    assert (table.loc[list(KINDS), "status"] == "ok").all()
    for image_id, (raw, header) in KINDS.items():
        stats = {k: table.loc[image_id, k] for k in reference_stats(raw, header)}
        assert stats == pytest.approx(reference_stats(raw, header), rel=1e-9, abs=1e-12)


def test_importing_the_package_and_converting_never_imports_torch(src, tmp_path):
    code = (
        "import sys, ichprep, ichprep.cli, ichprep.convert.run.pipeline\n"
        "from ichprep.convert import Options, Settings, convert\n"
        f"r = convert({str(src)!r}, {str(tmp_path / 'out')!r}, Settings(size=32), Options(jobs=1, quiet=True))\n"
        "assert r.converted > 0, r\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_pixel_stats_in_the_manifest_are_before_the_header_fix(tmp_path, make_ct):
    true_hu = np.clip(stored_head(0.0, np.int16, 9), -1000, 3000).astype(np.int64)
    stored = np.mod(true_hu + 50, 4096).astype(np.uint16)
    folder = tmp_path / "quirk"
    folder.mkdir()
    (folder / "ID_quirk.dcm").write_bytes(make_ct(stored, bits_stored=12, intercept=-50.0))
    out = tmp_path / "out"
    pipeline.convert(folder, out, *quiet(crop=False, size=SIDE))
    row = pd.read_parquet(out / "manifest.parquet").set_index("id").loc["ID_quirk"]
    raw = stored.astype(np.float64)
    assert row["header_fix"]
    assert (row["img_min"], row["img_max"]) == (raw.min(), raw.max())
    unfixed = np.mean((raw - 50 > 0) & (raw - 50 < 80))
    fixed_hu = np.mod(stored.astype(np.int64) + 1000, 4096) - 1000
    assert row["img_pct_window"] == pytest.approx(unfixed)
    assert abs(unfixed - np.mean((fixed_hu > 0) & (fixed_hu < 80))) > 0.05


def test_manifest_header_columns_are_the_files_header(src, tmp_path):
    ds = pydicom.dcmread(io.BytesIO((src / "ID_0000000a3.dcm").read_bytes()))
    out = tmp_path / "out"
    pipeline.convert(src, out, *quiet(size=32))
    row = pd.read_parquet(out / "manifest.parquet").set_index("id").loc["ID_0000000a3"]
    assert row["SOPInstanceUID"] == ds.SOPInstanceUID and row["PatientID"] == ds.PatientID
    assert float(row["ImagePositionPatient2"]) == float(ds.ImagePositionPatient[2])


@pytest.mark.parametrize(
    "made",
    [
        Settings(format="hdf5", codec="jpeg", quality=90, size=64, crop=False, windows="40/80,bone,subdural"),
        Settings(format="jpg", quality=80, size=48, windows="brain,soft,bone"),
    ],
)
def test_saved_settings_reproduce_the_run_that_wrote_them(tmp_path, made):
    from ichprep.synth import generate

    images = generate(tmp_path / "raw", n=6, seed=2, size=64) / "stage_1_train_images"
    out = tmp_path / "out"
    first = pipeline.convert(images, out, made, Options(jobs=1, quiet=True))
    again = Settings.load(out)
    assert (again.format, again.codec, again.quality, again.size, again.crop) == (
        made.format,
        made.codec,
        made.quality,
        made.size,
        made.crop,
    )
    assert again.channels == first.settings.channels and again.channels
    assert again.output_differences(first.settings) == []
    rerun = pipeline.convert(images, out, again, Options(jobs=1, quiet=True))
    assert (rerun.skipped, rerun.converted) == (first.converted, 0)


def test_a_fastai_resume_reuses_the_saved_breakpoints(src, tmp_path, monkeypatch):
    out = tmp_path / "out"
    pipeline.convert(src, out, *quiet(windows="fastai", crop=False, size=SIDE))
    first = outputs(out)
    saved = json.loads((out / "ichprep.json").read_text())["channels"][2]["breaks"]
    victims = sorted(first)[:2]
    for name in victims:
        (out / name).unlink()

    def no_new_sample(*_args, **_kwargs):
        raise AssertionError("a resumed fastai run must not estimate new breakpoints")

    monkeypatch.setattr(plan, "sample_breaks", no_new_sample)
    again = pipeline.convert(src, out, *quiet(windows="fastai", crop=False, size=SIDE))
    assert again.converted == 2
    assert json.loads((out / "ichprep.json").read_text())["channels"][2]["breaks"] == saved
    assert outputs(out) == first


def test_quiet_silences_the_progress_bar_and_nothing_else(src, tmp_path):
    loud = run_cli(src, tmp_path / "loud", "--jobs", 1)
    hushed = run_cli(src, tmp_path / "hushed", "--jobs", 1, "--quiet")
    assert loud.exit_code == hushed.exit_code == 0
    assert "convert:" in loud.stderr and "img/s" in loud.stderr
    assert hushed.stderr == ""
    assert hushed.stdout == loud.stdout.replace("loud", "hushed")


def test_shards_are_cut_so_that_every_process_has_one_when_inputs_are_few():
    inputs = [sources.Input(f"ID_{k}", f"/d/ID_{k}.dcm", f"/d/ID_{k}.dcm") for k in range(30)]
    assert pipeline.shard_size(inputs, 100, jobs=2) == 15
    assert pipeline.shard_size(inputs, 10, jobs=2) == 10
    assert pipeline.shard_size(inputs, 100, jobs=1) == 30
    assert pipeline.shard_size(iter(inputs), 100, jobs=2) == 100, "a stream's length is unknown: the size asked for"
