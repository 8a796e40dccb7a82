"""`ichprep synth`: competition layout, labels, determinism, exact decoding, header quirks, CLI."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from cli_run import ichprep
from pydicom.uid import CTImageStorage, ImplicitVRLittleEndian, RLELossless

from ichprep import synth

COMPETITION_ORDER = ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"]
ALL_QUIRKS = {
    "signed_as_unsigned",
    "no_preamble",
    "rle",
    "intercept_1000",
    "multi_window",
    "non_square",
    "zero_variance",
    "int16",
}
N, SEED, SIZE = 40, 7, 128


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("synth") / "out", N, seed=SEED, size=SIZE)


@pytest.fixture(scope="module")
def specs() -> dict[str, synth.SliceSpec]:
    return {spec.image_id: spec for spec in synth.plan(N, SEED, SIZE)}


def read(path: Path) -> pydicom.Dataset:
    """Read a file as a tolerant reader must: framing-less files get their implicit transfer syntax."""
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        assert ds.original_encoding == (True, True)
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


def decoded_hu(ds: pydicom.Dataset) -> np.ndarray:
    """HU from the stored pixels and the header, with spec §3.2's fix for signed-as-unsigned files."""
    raw = ds.pixel_array.astype(np.int64)
    intercept, slope = float(ds.RescaleIntercept), float(ds.RescaleSlope)
    if ds.PixelRepresentation == 0 and intercept > -100:
        return ((raw + 1000) % 4096) - 1000
    return np.rint(raw * slope + intercept).astype(np.int64)


def label_rows(root: Path) -> list[list[str]]:
    with (root / "stage_1_train.csv").open(newline="") as f:
        return list(csv.reader(f))


def quirk_rows(root: Path) -> list[tuple[str, str]]:
    with (root / "synth_quirks.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "quirk"]
    return [(row[0], row[1]) for row in rows[1:]]


def test_layout_is_one_competition_named_dicom_per_image(synth_set: Path) -> None:
    files = sorted((synth_set / "stage_1_train_images").iterdir())
    assert len(files) == N
    assert all(re.fullmatch(r"ID_[0-9a-f]{9}\.dcm", f.name) for f in files)
    ids_in_csv = {row[0].rsplit("_", 1)[0] for row in label_rows(synth_set)[1:]}
    assert ids_in_csv == {f.stem for f in files}


def test_label_csv_has_six_rows_per_image_in_competition_order_and_any_is_the_max(synth_set: Path) -> None:
    rows = label_rows(synth_set)
    assert rows[0] == ["ID", "Label"]
    body = rows[1:]
    assert len(body) == 6 * N
    for start in range(0, len(body), 6):
        block = body[start : start + 6]
        image = block[0][0][: len("ID_") + 9]
        assert [row[0] for row in block] == [f"{image}_{name}" for name in COMPETITION_ORDER]
        values = [int(row[1]) for row in block]
        assert set(values) <= {0, 1}
        assert values[5] == max(values[:5])


def test_the_same_seed_writes_byte_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    def contents(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    first = contents(synth.generate(tmp_path / "a", 12, seed=3, size=64))
    second = contents(synth.generate(tmp_path / "b", 12, seed=3, size=64))
    other = contents(synth.generate(tmp_path / "c", 12, seed=4, size=64))
    assert first == second
    assert set(first) != set(other)


def test_every_file_decodes_to_exactly_the_hu_the_generator_drew(synth_set: Path, specs: dict[str, synth.SliceSpec]) -> None:
    for path in sorted((synth_set / "stage_1_train_images").iterdir()):
        ds = read(path)
        expected = synth.truth_hu(specs[path.stem])
        assert ds.pixel_array.shape == expected.shape
        np.testing.assert_array_equal(decoded_hu(ds), expected, err_msg=path.name)


def test_headers_carry_the_competition_tags(synth_set: Path) -> None:
    for path in sorted((synth_set / "stage_1_train_images").iterdir()):
        ds = read(path)
        assert ds.SOPInstanceUID == path.stem
        assert ds.SOPClassUID == CTImageStorage
        assert ds.Modality == "CT"
        assert re.fullmatch(r"ID_[0-9a-f]{8}", ds.PatientID)
        assert re.fullmatch(r"ID_[0-9a-f]{10}", ds.StudyInstanceUID)
        assert re.fullmatch(r"ID_[0-9a-f]{10}", ds.SeriesInstanceUID)
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.SamplesPerPixel == 1 and ds.BitsAllocated == 16
        assert ds.HighBit == ds.BitsStored - 1 and ds.BitsStored in (12, 16)
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds.RescaleSlope) == 1 and float(ds.RescaleIntercept) in (-1024, -1000, 0, 1)
        assert float(ds.SliceThickness) == 5 and float(ds.KVP) > 0
        spacing_at_512 = float(ds.PixelSpacing[0]) * SIZE / 512
        assert 0.4 <= spacing_at_512 <= 0.5 and ds.PixelSpacing[0] == ds.PixelSpacing[1]
        assert len(ds.ImagePositionPatient) == 3


def test_each_patient_has_one_study_and_one_series_whose_z_rises_by_the_slice_thickness(synth_set: Path) -> None:
    series: dict[str, list[float]] = defaultdict(list)
    studies: dict[str, set[str]] = defaultdict(set)
    for path in (synth_set / "stage_1_train_images").iterdir():
        ds = read(path)
        series[ds.SeriesInstanceUID].append(float(ds.ImagePositionPatient[2]))
        studies[ds.PatientID].add((ds.StudyInstanceUID, ds.SeriesInstanceUID))
    assert all(len(pairs) == 1 for pairs in studies.values())
    assert len(series) == len(studies) >= 2
    for z in series.values():
        assert np.allclose(np.diff(sorted(z)), 5.0)
    assert all(len(z) <= 20 for z in series.values())


def test_each_quirk_is_recorded_and_shows_in_its_file(synth_set: Path) -> None:
    rows = quirk_rows(synth_set)
    assert {quirk for _, quirk in rows} == ALL_QUIRKS
    images = synth_set / "stage_1_train_images"
    for image, quirk in rows:
        path = images / f"{image}.dcm"
        ds = read(path)
        if quirk == "signed_as_unsigned":
            assert (ds.PixelRepresentation, ds.BitsStored) == (0, 12) and float(ds.RescaleIntercept) in (0, 1)
            assert ds.pixel_array.max() > 3000  # air (-1000 HU) stored as 12-bit two's complement
        elif quirk == "no_preamble":
            assert path.read_bytes()[128:132] != b"DICM"
            with pytest.raises(pydicom.errors.InvalidDicomError):
                pydicom.dcmread(path)
        elif quirk == "rle":
            assert ds.file_meta.TransferSyntaxUID == RLELossless
        elif quirk == "intercept_1000":
            assert float(ds.RescaleIntercept) == -1000
        elif quirk == "multi_window":
            assert len(ds.WindowCenter) == 2 and len(ds.WindowWidth) == 2
        elif quirk == "non_square":
            assert ds.Rows == SIZE and ds.Columns == round(SIZE * 436 / 512)
        elif quirk == "zero_variance":
            assert ds.pixel_array.std() == 0
        elif quirk == "int16":
            assert (ds.PixelRepresentation, ds.BitsStored) == (1, 16)


def test_files_without_quirks_use_the_common_encoding(synth_set: Path) -> None:
    quirky = {image for image, _ in quirk_rows(synth_set)}
    plain = [p for p in (synth_set / "stage_1_train_images").iterdir() if p.stem not in quirky]
    assert plain
    syntaxes = set()
    for path in plain:
        ds = pydicom.dcmread(path)
        assert (ds.PixelRepresentation, ds.BitsStored, float(ds.RescaleIntercept)) == (0, 12, -1024)
        assert ds.Rows == ds.Columns == SIZE
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
    assert syntaxes <= {pydicom.uid.ExplicitVRLittleEndian, ImplicitVRLittleEndian}


def test_padding_outside_the_field_of_view_is_stored_as_the_scanners_do(synth_set: Path, specs: dict[str, synth.SliceSpec]) -> None:
    checked = 0
    for image, spec in specs.items():
        regions = synth.phantom(spec).regions
        if spec.encoding.signed_as_unsigned or "fov" not in regions or regions["fov"].all():
            continue
        raw = read(synth_set / "stage_1_train_images" / f"{image}.dcm").pixel_array
        expected = -2000 if spec.encoding.pixel_representation else 0
        assert (raw[~regions["fov"]] == expected).all()
        if float(spec.encoding.intercept) == -1024:
            assert (raw[regions["fov"]] != expected).all()  # air (-1000 HU) is never the padding value
        checked += 1
    assert checked > 0


@pytest.mark.parametrize("seed", range(5))
def test_twenty_images_carry_every_quirk(seed: int) -> None:
    quirks = {q for spec in synth.plan(20, seed, 64) for q in spec.quirks}
    assert quirks == ALL_QUIRKS


@pytest.mark.parametrize("seed", range(10))
def test_fifty_images_show_every_subtype(seed: int) -> None:
    labels = np.array([spec.labels for spec in synth.plan(50, seed, 64)])
    assert (labels.sum(axis=0) > 0).all()


@pytest.mark.parametrize("seed", range(5))
def test_positives_are_a_realistic_share_and_cluster_in_series(seed: int) -> None:
    specs = synth.plan(200, seed, 64)
    share = np.mean([spec.labels[-1] for spec in specs])
    assert 0.14 <= share <= 0.40
    by_series: dict[str, list[int]] = defaultdict(list)
    for spec in specs:
        by_series[spec.series_uid].append(spec.labels[-1])
    negative_series = [s for s, values in by_series.items() if max(values) == 0]
    assert negative_series and len(negative_series) < len(by_series)
    co_occurring = sum(sum(spec.labels[:5]) >= 2 for spec in specs)
    assert co_occurring > 0


def test_cli_writes_a_set_and_rejects_a_bad_count(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = ichprep("synth", str(out), "--n", "5", "--seed", "3", "--size", "64", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(list((out / "stage_1_train_images").glob("ID_*.dcm"))) == 5
    assert len(label_rows(out)) == 1 + 6 * 5
    bad = ichprep("synth", str(tmp_path / "bad"), "--n", "0")
    assert bad.exit_code == 2
