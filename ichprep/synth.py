"""Synthetic head-CT DICOMs laid out like the competition's stage 1 train set.

Why: the real data is 460 GB behind a licence, but every stage of ichprep (convert, clean-meta,
train) needs files that look and misbehave like it. ``generate`` writes
``OUT/stage_1_train_images/ID_<9 hex>.dcm``, ``OUT/stage_1_train.csv`` (six rows an image, in
the competition's subtype order) and ``OUT/synth_quirks.csv`` (``id,quirk``: which files carry
which known header quirk, so tests can find them).

The work is split in two pure steps and one I/O step: ``plan`` decides everything (patients,
series, slice levels, hemorrhages and labels, encodings and quirks) from one seed; ``truth_hu``
draws the slice a spec describes (``ichprep.phantom``) and rounds it to the integer HU the file
must decode to; ``write_slice`` encodes those HU into a DICOM. Each slice draws its noise from
its own seed, so any file can be re-derived on its own and the output is byte-identical for a
given seed.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, generate_uid

from ichprep import SUBTYPES
from ichprep.phantom import Head, Lesion, Phantom, Section, head_scale, render, ventricle_scale, wrap

IMAGES_DIR = "stage_1_train_images"
LABELS_CSV = "stage_1_train.csv"
QUIRKS_CSV = "synth_quirks.csv"
SLICE_THICKNESS = 5.0
QUIRKS: tuple[str, ...] = (
    "signed_as_unsigned",
    "no_preamble",
    "rle",
    "intercept_1000",
    "multi_window",
    "non_square",
    "zero_variance",
    "int16",
)
"""Header quirks of the real data; every set of 20 or more images carries each at least once."""
QUIRK_RATE = {"int16": 0.15, "multi_window": 0.03, "intercept_1000": 0.02, "rle": 0.02}
"""Share of images per quirk (the rest: one image in a hundred); at least one image each."""
HEMORRHAGES: tuple[str, ...] = SUBTYPES[:-1]
HEMORRHAGE_WEIGHTS = (0.12, 0.3, 0.13, 0.2, 0.25)
"""How often each subtype is drawn for a lesion, in HEMORRHAGES order (intraparenchymal and subdural commonest)."""
POSITIVE_SERIES = 0.5
SERIES_LENGTH = (10, 20)
LESIONABLE_SCALE = 0.8
"""Hemorrhages sit on slices where the head is at least this wide: the brain is big enough to show them."""
VENTRICLE_MIN = 0.6


@dataclass(frozen=True)
class Encoding:
    """How a slice's HU become stored pixels and which file framing holds them."""

    bits_stored: int = 12
    pixel_representation: int = 0
    intercept: int = -1024
    signed_as_unsigned: bool = False
    """Store HU mod 4096 with intercept 0 or 1: the header bug of spec §3.2."""
    explicit_vr: bool = True
    file_meta: bool = True
    rle: bool = False
    windows: tuple[tuple[float, float], ...] = ((40.0, 80.0),)
    columns_ratio: float = 1.0

    @property
    def padding_raw(self) -> int:
        """Stored value outside the reconstruction circle: 0 unsigned, -2000 signed, as scanners write."""
        return -2000 if self.pixel_representation else 0


@dataclass(frozen=True)
class SliceSpec:
    """Everything needed to draw and write one image, with its labels and quirks."""

    image_id: str
    patient_id: str
    study_uid: str
    series_uid: str
    z: float
    origin: tuple[float, float]
    head: Head
    section: Section
    encoding: Encoding
    labels: tuple[int, ...]
    """0/1 per subtype, in SUBTYPES order (``any`` last)."""
    quirks: tuple[str, ...]
    seed: int


def _hex_ids(rng: np.random.Generator, count: int, digits: int, taken: set[str]) -> list[str]:
    """``count`` new distinct ``ID_<hex>`` strings of ``digits`` lowercase hex digits."""
    out: list[str] = []
    while len(out) < count:
        value = f"ID_{int(rng.integers(0, 16**digits)):0{digits}x}"
        if value not in taken:
            taken.add(value)
            out.append(value)
    return out


def _head(rng: np.random.Generator) -> Head:
    """A plausible adult head: size, shape, tilt, skull and brain densities vary per patient."""
    n_sulci = int(rng.integers(22, 32))
    gap = 2 * np.pi / n_sulci
    angles = rng.uniform(-np.pi, np.pi) + gap * (np.arange(n_sulci) + rng.uniform(-0.25, 0.25, n_sulci))
    depths = rng.uniform(8, 16, n_sulci)
    for fissure in (-np.pi / 2, np.pi / 2):  # the interhemispheric fissure replaces the nearest sulcus
        nearest = int(np.argmin(np.abs(wrap(angles - fissure))))
        angles[nearest], depths[nearest] = fissure, rng.uniform(25, 35)
    sulci = [(float(wrap(a)), float(depth)) for a, depth in zip(angles, depths)]
    table = None
    if rng.random() < 0.6:
        table = (float(rng.uniform(6, 18)), float(rng.uniform(2.5, 5)), float(rng.uniform(250, 450)), float(rng.uniform(120, 350)))
    return Head(
        center=(float(rng.uniform(-8, 8)), float(rng.uniform(-10, 6))),
        axes=(float(rng.uniform(66, 76)), float(rng.uniform(82, 92))),
        angle=float(rng.uniform(-0.15, 0.15)),
        outline=(float(rng.uniform(0, 0.03)), float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 0.02)), float(rng.uniform(0, 2 * np.pi))),
        scalp=float(rng.uniform(3, 6)),
        skull=float(rng.uniform(5, 8)),
        skull_wave=(float(rng.uniform(0.1, 0.25)), float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.05, 0.15)), float(rng.uniform(0, 2 * np.pi))),
        diploe_hu=float(rng.uniform(750, 950)),
        cortical_hu=float(rng.uniform(1450, 1750)),
        cortex=float(rng.uniform(3, 5)),
        grey_hu=float(rng.uniform(36, 40)),
        white_hu=float(rng.uniform(27, 31)),
        ventricle_level=float(rng.uniform(0.0, 0.15)),
        ventricle_reach=float(rng.uniform(0.3, 0.4)),
        ventricle_size=(float(rng.uniform(7, 9)), float(rng.uniform(20, 26))),
        sulci=tuple(sulci),
        table=table,
    )


def _levels(rng: np.random.Generator, count: int) -> np.ndarray:
    """Normalised heights of ``count`` slices, bottom first, from above the skull base to near the vertex.

    Like a real head CT the series covers the whole brain, ventricles included, whatever its
    length: a shorter series means a head less tall, not a partial scan.
    """
    bottom, top = float(rng.uniform(-0.45, -0.2)), float(rng.uniform(0.78, 0.92))
    return np.linspace(bottom, top, count)


def _lesion(rng: np.random.Generator, subtype: str) -> Lesion:
    """A hemorrhage of ``subtype`` at its widest, big enough to stay visible at 64 px."""
    angle = float(rng.uniform(-np.pi, np.pi))
    hu = float(rng.uniform(62, 78))
    if subtype == "epidural":
        return Lesion("epidural", angle, float(rng.uniform(0.35, 0.5)), float(rng.uniform(12, 18)), 0.0, hu)
    if subtype == "subdural":
        return Lesion("subdural", angle, float(rng.uniform(0.8, 1.2)), float(rng.uniform(9, 13)), 0.0, hu)
    if subtype == "subarachnoid":
        return Lesion("subarachnoid", angle, float(rng.uniform(0.7, 1.1)), float(rng.uniform(4, 5.5)), 0.0, hu)
    if subtype == "intraparenchymal":
        lateral = float(rng.choice([0.0, np.pi])) + float(rng.uniform(-0.6, 0.6))
        return Lesion("intraparenchymal", lateral, float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(11, 17)), float(rng.uniform(0.45, 0.6)), hu)
    return Lesion("intraventricular", 0.0, 0.0, float(rng.uniform(0.4, 0.7)), float(rng.choice([-1.0, 0.0, 1.0])), hu)


def _feasible(head: Head, levels: np.ndarray, subtype: str) -> np.ndarray:
    """Slice indices of a series where a hemorrhage of ``subtype`` has room to show."""
    if subtype == "intraventricular":
        ok = [ventricle_scale(head, float(t)) >= VENTRICLE_MIN for t in levels]
    else:
        ok = [head_scale(float(t)) >= LESIONABLE_SCALE for t in levels]
    return np.flatnonzero(ok)


def _place(rng: np.random.Generator, head: Head, levels: np.ndarray, subtype: str) -> dict[int, Lesion] | None:
    """The lesion's cut on each slice of a contiguous run of feasible slices (None: no room)."""
    slots = _feasible(head, levels, subtype)
    if slots.size == 0:
        return None
    length = int(rng.integers(max(1, int(0.3 * slots.size)), max(2, int(0.8 * slots.size)) + 1))
    length = min(length, slots.size)
    first = int(rng.integers(0, slots.size - length + 1))
    run = slots[first : first + length]
    lesion = _lesion(rng, subtype)
    middle, half = (run[0] + run[-1]) / 2, (run[-1] - run[0]) / 2 + 1
    return {int(k): replace(lesion, scale=0.65 + 0.35 * float(np.sqrt(1 - ((k - middle) / half) ** 2))) for k in run}


@dataclass
class _Series:
    """A series being planned: its head, slice levels and per-slice lesions."""

    head: Head
    levels: np.ndarray
    lesions: list[dict[int, Lesion]]

    def add(self, rng: np.random.Generator, subtype: str) -> bool:
        """Place one more hemorrhage of ``subtype``; False when the series has no room for it."""
        placed = _place(rng, self.head, self.levels, subtype)
        if placed is not None:
            self.lesions.append(placed)
        return placed is not None

    def subtypes(self) -> set[str]:
        """Hemorrhage subtypes placed so far."""
        return {lesion.subtype for cuts in self.lesions for lesion in cuts.values()}


def _series(rng: np.random.Generator, n: int) -> list[_Series]:
    """Patients' series of 10-20 slices (the last one shorter), exactly half of them with hemorrhages.

    Subtypes co-occur (one to three lesions a positive series) and every subtype is placed at
    least once when the set is big enough to hold them, so small sets still exercise every label.
    """
    counts: list[int] = []
    while sum(counts) < n:
        counts.append(min(n - sum(counts), int(rng.integers(SERIES_LENGTH[0], SERIES_LENGTH[1] + 1))))
    positive = set(rng.permutation(len(counts))[: max(1, int(round(POSITIVE_SERIES * len(counts))))].tolist())
    plans: list[_Series] = []
    for i, count in enumerate(counts):
        head = _head(rng)
        series = _Series(head, _levels(rng, count), [])
        if i in positive:
            for _ in range(int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))):
                series.add(rng, str(rng.choice(HEMORRHAGES, p=HEMORRHAGE_WEIGHTS)))
        plans.append(series)
    present = set().union(*(s.subtypes() for s in plans))
    order = [s for s in plans if s.lesions] + [s for s in plans if not s.lesions]
    for i, subtype in enumerate(m for m in HEMORRHAGES if m not in present):
        for series in order[i % len(order) :] + order[: i % len(order)]:
            if series.add(rng, subtype):
                break
    return plans


def _quirks(rng: np.random.Generator, lesioned: np.ndarray) -> list[tuple[str, ...]]:
    """Which quirk (at most one) each image carries: one of each first, then by rate.

    ``lesioned`` flags images with a hemorrhage: the blank ``zero_variance`` slices go to
    images without one where possible, so blanking never erases the only cut of a lesion.
    """
    n = lesioned.size
    slots = list(QUIRKS)
    for quirk in QUIRKS:
        slots += [quirk] * max(0, int(round(QUIRK_RATE.get(quirk, 0.01) * n)) - 1)
    slots = sorted(slots[:n], key=lambda quirk: quirk != "zero_variance")
    order = rng.permutation(n)
    order = np.concatenate([order[~lesioned[order]], order[lesioned[order]]])
    out: list[tuple[str, ...]] = [()] * n
    for index, quirk in zip(order, slots):
        out[int(index)] = (quirk,)
    return out


def _encoding(rng: np.random.Generator, base: Encoding, quirks: tuple[str, ...]) -> Encoding:
    """The series' usual encoding with this image's quirk applied."""
    if "signed_as_unsigned" in quirks:
        return replace(base, bits_stored=12, pixel_representation=0, intercept=int(rng.choice([0, 1])), signed_as_unsigned=True)
    if "no_preamble" in quirks:
        return replace(base, explicit_vr=False, file_meta=False)
    if "rle" in quirks:
        return replace(base, explicit_vr=True, rle=True)
    if "intercept_1000" in quirks:
        return replace(base, bits_stored=12, pixel_representation=0, intercept=-1000)
    if "multi_window" in quirks:
        level, width = base.windows[0]
        return replace(base, windows=((level, width), (level, width)))
    if "non_square" in quirks:
        return replace(base, columns_ratio=436 / 512)
    if "int16" in quirks:
        return replace(base, bits_stored=16, pixel_representation=1)
    return base


def plan(n: int, seed: int = 0, size: int = 512) -> list[SliceSpec]:
    """Every image of a synthetic set, in series order (bottom slice first), from ``seed`` alone."""
    if n < 1 or size < 16:
        raise ValueError(f"need n >= 1 and size >= 16, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    series = _series(rng, n)
    lesioned = np.concatenate([[any(k in cuts for cuts in s.lesions) for k in range(s.levels.size)] for s in series])
    quirks = _quirks(rng, lesioned.astype(bool))
    taken: set[str] = set()
    image_ids = _hex_ids(rng, n, 9, taken)
    specs: list[SliceSpec] = []
    for planned in series:
        patient, = _hex_ids(rng, 1, 8, taken)
        study, series_uid = _hex_ids(rng, 2, 10, taken)
        fov_mm = float(rng.integers(205, 251))
        spacing = fov_mm / size
        z0 = float(rng.integers(-60, 120)) + float(rng.choice([0.0, 0.5]))
        base = Encoding(
            explicit_vr=bool(rng.random() < 0.75),
            windows=(((40.0, 80.0), (35.0, 135.0), (30.0, 80.0), (40.0, 150.0))[int(rng.integers(0, 4))],),
        )
        fov = float(rng.uniform(0.97, 1.0)) if rng.random() < 0.8 else 0.0
        for k, t in enumerate(planned.levels):
            index = len(specs)
            quirk = quirks[index]
            encoding = _encoding(rng, base, quirk)
            rows, cols = size, max(8, int(round(size * encoding.columns_ratio)))
            cuts = tuple(cuts[k] for cuts in planned.lesions if k in cuts)
            blank = "zero_variance" in quirk
            hemorrhages = set() if blank else {lesion.subtype for lesion in cuts}
            labels = [int(m in hemorrhages) for m in HEMORRHAGES]
            padding = -1000.0 if encoding.signed_as_unsigned else encoding.intercept + encoding.padding_raw
            section = Section(float(t), (rows, cols), spacing, padding, fov, () if blank else cuts, blank)
            specs.append(
                SliceSpec(
                    image_id=image_ids[index],
                    patient_id=patient,
                    study_uid=study,
                    series_uid=series_uid,
                    z=z0 + SLICE_THICKNESS * k,
                    origin=(-cols * spacing / 2, -rows * spacing / 2),
                    head=planned.head,
                    section=section,
                    encoding=encoding,
                    labels=(*labels, max(labels)),
                    quirks=quirk,
                    seed=int(rng.integers(0, 2**63)),
                )
            )
    return specs


def phantom(spec: SliceSpec) -> Phantom:
    """The slice ``spec`` describes, in float HU, with its structure and lesion masks."""
    return render(np.random.default_rng(spec.seed), spec.head, spec.section)


def truth_hu(spec: SliceSpec) -> np.ndarray:
    """The integer HU the file for ``spec`` decodes to (after the §3.2 fix where it applies)."""
    return np.rint(phantom(spec).hu).astype(np.int16)


def stored_pixels(hu: np.ndarray, encoding: Encoding) -> np.ndarray:
    """The stored pixel array that decodes to ``hu`` under ``encoding``'s header."""
    if encoding.signed_as_unsigned:
        return np.mod(hu.astype(np.int32), 4096).astype(np.uint16)
    raw = hu.astype(np.int32) - encoding.intercept
    dtype = np.int16 if encoding.pixel_representation else np.uint16
    info = np.iinfo(dtype)
    top = min(info.max, 2**encoding.bits_stored - 1) if not encoding.pixel_representation else info.max
    if raw.min() < info.min or raw.max() > top:
        raise ValueError(f"HU {hu.min()}..{hu.max()} do not fit {encoding}")
    return raw.astype(dtype)


def _number(value: float) -> str:
    """A decimal string as short as the value needs (DS allows 16 characters)."""
    return f"{value:.10g}"


def dataset(spec: SliceSpec, raw: np.ndarray) -> Dataset:
    """The DICOM data set of one image: the tags the competition files carry, pixels included."""
    enc = spec.encoding
    rows, cols = raw.shape
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = spec.image_id
    ds.Modality = "CT"
    ds.PatientID = spec.patient_id
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.StudyID = ""
    ds.KVP = "120"
    ds.SliceThickness = _number(SLICE_THICKNESS)
    ds.ImagePositionPatient = [_number(spec.origin[0]), _number(spec.origin[1]), _number(spec.z)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [_number(spec.section.spacing)] * 2
    ds.BitsAllocated = 16
    ds.BitsStored = enc.bits_stored
    ds.HighBit = enc.bits_stored - 1
    ds.PixelRepresentation = enc.pixel_representation
    centers = [_number(level) for level, _ in enc.windows]
    widths = [_number(width) for _, width in enc.windows]
    ds.WindowCenter = centers if len(centers) > 1 else centers[0]
    ds.WindowWidth = widths if len(widths) > 1 else widths[0]
    ds.RescaleIntercept = _number(enc.intercept)
    ds.RescaleSlope = "1"
    ds.PixelData = raw.tobytes()
    return ds


def write_slice(spec: SliceSpec, path: Path) -> None:
    """Encode ``spec``'s truth HU into a DICOM file at ``path`` with its framing and compression."""
    enc = spec.encoding
    raw = stored_pixels(truth_hu(spec), enc)
    ds = dataset(spec, raw)
    if not enc.file_meta:
        ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
        return
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[spec.image_id])
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if enc.explicit_vr else ImplicitVRLittleEndian
    ds.preamble = b"\0" * 128
    if enc.rle:
        ds.compress(RLELossless, raw, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)


def write_labels(specs: list[SliceSpec], path: Path) -> None:
    """The competition label CSV: ``ID,Label``, six rows an image in SUBTYPES order."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["ID", "Label"])
        for spec in specs:
            writer.writerows([f"{spec.image_id}_{name}", label] for name, label in zip(SUBTYPES, spec.labels))


def write_quirks(specs: list[SliceSpec], path: Path) -> None:
    """The sidecar ``id,quirk``: one row per image and quirk it carries."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "quirk"])
        writer.writerows([spec.image_id, quirk] for spec in specs for quirk in spec.quirks)


@contextmanager
def _lenient_uids() -> Iterator[None]:
    """Accept the competition's ``ID_...`` UIDs (invalid on purpose) without a warning per element."""
    settings = pydicom.config.settings
    modes = settings.reading_validation_mode, settings.writing_validation_mode
    settings.reading_validation_mode = settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        yield
    finally:
        settings.reading_validation_mode, settings.writing_validation_mode = modes


def generate(out: Path, n: int, seed: int = 0, size: int = 512, progress: bool = False) -> Path:
    """Write a synthetic stage-1-train set of ``n`` images under ``out`` and return ``out``."""
    out = Path(out)
    specs = plan(n, seed, size)
    images = out / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    iterator = specs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(specs, desc="synth", unit="img")
    with _lenient_uids():
        for spec in iterator:
            write_slice(spec, images / f"{spec.image_id}.dcm")
    write_labels(specs, out / LABELS_CSV)
    write_quirks(specs, out / QUIRKS_CSV)
    return out
