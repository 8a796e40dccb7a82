"""Every decision about a synthetic data set, made up front from one seed: pure, no I/O.

``plan`` decides patients, series, slice levels, hemorrhages and labels, encodings and header
quirks; ``phantom``/``truth_hu`` draw the slice a spec describes (``ichprep.synth.phantom``) and
round it to the integer HU its file must decode to. Each slice draws its noise from its own seed,
so any file can be re-derived on its own and a data set is byte-identical for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ichprep import SUBTYPES
from ichprep.errors import IchprepError
from ichprep.synth.phantom import (
    NOISE_HU,
    Head,
    Lesion,
    Phantom,
    Section,
    head_scale,
    render,
    ventricle_scale,
    wrap,
)

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


def _wave(rng: np.random.Generator, first: tuple[float, float], second: tuple[float, float]) -> tuple[float, float, float, float]:
    """Amplitude and phase of a first and a second harmonic, amplitudes drawn from the given ranges.

    The draws come in the order (amplitude, phase, amplitude, phase), which keeps every data set
    of a given seed byte-identical.
    """
    return (float(rng.uniform(*first)), float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(*second)), float(rng.uniform(0, 2 * np.pi)))


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
        outline=_wave(rng, (0, 0.03), (0, 0.02)),
        scalp=float(rng.uniform(3, 6)),
        skull=float(rng.uniform(5, 8)),
        skull_wave=_wave(rng, (0.1, 0.25), (0.05, 0.15)),
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
        return Lesion(
            "intraparenchymal", lateral, float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(11, 17)), float(rng.uniform(0.45, 0.6)), hu
        )
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


def plan(n: int, seed: int = 0, size: int = 512, noise: float = NOISE_HU) -> list[SliceSpec]:
    """Every image of a synthetic set, in series order (bottom slice first), from ``seed`` alone.

    ``noise`` is the pixel noise in HU (``Section.noise_hu``); it changes the pixels only, never the plan.
    """
    if n < 1 or size < 16:
        raise IchprepError(f"need n >= 1 and size >= 16, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    series = _series(rng, n)
    lesioned = np.concatenate([[any(k in cuts for cuts in s.lesions) for k in range(s.levels.size)] for s in series])
    quirks = _quirks(rng, lesioned.astype(bool))
    taken: set[str] = set()
    image_ids = _hex_ids(rng, n, 9, taken)
    specs: list[SliceSpec] = []
    for planned in series:
        specs += _series_specs(rng, planned, len(specs), image_ids, quirks, taken, size, noise)
    return specs


def _series_specs(rng: np.random.Generator, planned: _Series, first: int, image_ids: list[str], quirks: list[tuple[str, ...]],
                  taken: set[str], size: int, noise: float) -> list[SliceSpec]:
    """The slices of one series, bottom first: its patient, ids, field of view and encoding drawn once, then each slice's.

    ``first`` is the index of the series' first slice in the set's ``image_ids`` and ``quirks``;
    the draws are made in the order a data set's bytes depend on.
    """
    (patient,) = _hex_ids(rng, 1, 8, taken)
    study, series_uid = _hex_ids(rng, 2, 10, taken)
    fov_mm = float(rng.integers(205, 251))
    spacing = fov_mm / size
    z0 = float(rng.integers(-60, 120)) + float(rng.choice([0.0, 0.5]))
    base = Encoding(
        explicit_vr=bool(rng.random() < 0.75),
        windows=(((40.0, 80.0), (35.0, 135.0), (30.0, 80.0), (40.0, 150.0))[int(rng.integers(0, 4))],),
    )
    fov = float(rng.uniform(0.97, 1.0)) if rng.random() < 0.8 else 0.0
    specs: list[SliceSpec] = []
    for k, t in enumerate(planned.levels):
        quirk = quirks[first + k]
        encoding = _encoding(rng, base, quirk)
        rows, cols = size, max(8, int(round(size * encoding.columns_ratio)))
        cuts = tuple(cuts[k] for cuts in planned.lesions if k in cuts)
        blank = "zero_variance" in quirk
        hemorrhages = set() if blank else {lesion.subtype for lesion in cuts}
        labels = [int(m in hemorrhages) for m in HEMORRHAGES]
        padding = -1000.0 if encoding.signed_as_unsigned else encoding.intercept + encoding.padding_raw
        section = Section(float(t), (rows, cols), spacing, padding, fov, () if blank else cuts, blank, noise)
        specs.append(SliceSpec(image_id=image_ids[first + k], patient_id=patient, study_uid=study, series_uid=series_uid,
                               z=z0 + SLICE_THICKNESS * k, origin=(-cols * spacing / 2, -rows * spacing / 2), head=planned.head,
                               section=section, encoding=encoding, labels=(*labels, max(labels)), quirks=quirk,
                               seed=int(rng.integers(0, 2**63))))
    return specs


def phantom(spec: SliceSpec) -> Phantom:
    """The slice ``spec`` describes, in float HU, with its structure and lesion masks."""
    return render(np.random.default_rng(spec.seed), spec.head, spec.section)


def truth_hu(spec: SliceSpec) -> np.ndarray:
    """The integer HU the file for ``spec`` decodes to (after the §3.2 fix where it applies)."""
    return np.rint(phantom(spec).hu).astype(np.int16)
