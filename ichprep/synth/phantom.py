"""Draw one axial slice of a synthetic head CT in Hounsfield units. Pure array functions.

Why a phantom: the real data set is 460 GB and licensed; tests, demos and the training loop
need head CTs whose anatomy, HU ranges and hemorrhages look like the real thing and whose
ground truth is known pixel by pixel. Everything is drawn from a head-centred polar frame:
``s`` is the distance from the head centre and ``d = R(psi) - s`` the depth below the outer
surface along the ray at angle ``psi`` (exact along the ray, close to the normal distance for
a mildly elliptic head). Layers are depth bands (scalp, skull, brain), and every hemorrhage
is a region defined by angle and depth, so its shape follows the skull as its subtype does:
an epidural lens bulges inwards, a subdural crescent hugs the inner table, subarachnoid blood
fills sulci, intraventricular blood layers in the dependent (posterior) ventricles.

Lengths are in millimetres, angles in radians; the image frame follows DICOM with
ImageOrientationPatient 1\\0\\0\\0\\1\\0: columns run to the patient's left (+x), rows to
posterior (+y), so the patient table lies below the head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

AIR_HU = -1000.0
CSF_HU = 6.0
SCALP_HU = 40.0
NOISE_HU = 4.0
BLOOD_RANGE = (55.0, 85.0)
"""Every hemorrhage pixel lies here after noise: clearly above grey matter, below bone."""
BONE_RANGE = (700.0, 1800.0)

Subtype = Literal["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]


@dataclass(frozen=True)
class Head:
    """One patient's head, fixed across the slices of their series."""

    center: tuple[float, float]
    """Offset (x, y) of the head centre from the image centre, mm."""
    axes: tuple[float, float]
    """Semi-axes (left-right, anterior-posterior) at the widest level, mm."""
    angle: float
    """In-plane tilt of the head, radians."""
    outline: tuple[float, float, float, float]
    """(amplitude, phase) of the 2nd and 3rd harmonic bumps of the outer surface."""
    scalp: float
    skull: float
    """Mean skull thickness, mm; it varies with angle by ``skull_wave``."""
    skull_wave: tuple[float, float, float, float]
    diploe_hu: float
    cortical_hu: float
    cortex: float
    """Grey-matter ribbon thickness, mm."""
    grey_hu: float
    white_hu: float
    ventricle_level: float
    """Normalised height ``t`` where the lateral ventricles are largest."""
    ventricle_reach: float
    """Half the range of ``t`` over which ventricles are present."""
    ventricle_size: tuple[float, float]
    """Semi-axes of each lateral ventricle at its largest, mm."""
    sulci: tuple[tuple[float, float], ...]
    """(angle, depth mm) of each sulcus; the two deepest are the interhemispheric fissure."""
    table: tuple[float, float, float, float] | None
    """(gap below head mm, thickness mm, curvature radius mm, HU) of the patient table, if any."""


@dataclass(frozen=True)
class Lesion:
    """One hemorrhage as it cuts the current slice; ``scale`` shrinks it towards its z ends."""

    subtype: Subtype
    angle: float
    """Where around the head it sits (head frame, radians)."""
    spread: float
    """Half the angle it covers (epidural, subdural, subarachnoid) or irregularity phase (others)."""
    size: float
    """Thickness (epidural, subdural, subarachnoid), radius (intraparenchymal), fill fraction (intraventricular), mm or 0-1."""
    depth: float
    """Intraparenchymal: centre depth as a fraction of the intracranial radius; intraventricular: side (-1, 0 both, 1)."""
    hu: float
    scale: float = 1.0


@dataclass(frozen=True)
class Section:
    """What one slice shows: the level ``t`` through the head and the image grid."""

    t: float
    """Normalised height: -1 skull base, 0 widest, 1 vertex."""
    shape: tuple[int, int]
    """(rows, columns)."""
    spacing: float
    """Pixel size, mm."""
    padding_hu: float
    """Value outside the reconstruction circle."""
    fov: float
    """Radius of the reconstruction circle as a fraction of half the smaller side; 0 for no circle."""
    lesions: tuple[Lesion, ...] = ()
    blank: bool = False
    """An empty slice (all air), as scanners write above the vertex."""
    noise_hu: float = NOISE_HU
    """Standard deviation of the pixel noise inside the head, HU: a heavy one makes a slice hard to read alone."""


@dataclass
class Phantom:
    """The slice in HU (float32, before rounding) and where each structure is."""

    hu: np.ndarray
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    """Boolean masks: head, skull, intracranial, ventricles, sulci, table, fov."""
    lesions: dict[str, np.ndarray] = field(default_factory=dict)
    """Boolean mask of each hemorrhage subtype drawn on this slice."""


def head_scale(t: float) -> float:
    """Cross-section size relative to the widest level: an egg, rounder at the base than the top."""
    reach = 1.0 if t >= 0 else 1.6
    return float(np.sqrt(max(0.0, 1.0 - (t / reach) ** 2)))


def ventricle_scale(head: Head, t: float) -> float:
    """Size of the lateral ventricles at level ``t`` relative to their largest (0 where absent)."""
    u = (t - head.ventricle_level) / head.ventricle_reach
    return float(np.sqrt(max(0.0, 1.0 - u * u)))


def wrap(angle: np.ndarray | float) -> np.ndarray | float:
    """Angle difference folded into [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def _wave(psi: np.ndarray | float, coeffs: tuple[float, float, float, float]) -> np.ndarray | float:
    """1 + a2 cos(2 psi + p2) + a3 cos(3 psi + p3): a smooth, closed, per-patient deformation."""
    a2, p2, a3, p3 = coeffs
    return 1.0 + a2 * np.cos(2 * psi + p2) + a3 * np.cos(3 * psi + p3)


def outer_radius(head: Head, psi: np.ndarray | float, t: float) -> np.ndarray | float:
    """Distance from the head centre to the skin along the ray at ``psi``, mm."""
    a, b = head.axes
    ellipse = a * b / np.sqrt((b * np.cos(psi)) ** 2 + (a * np.sin(psi)) ** 2)
    return ellipse * _wave(psi, head.outline) * head_scale(t)


def inner_depth(head: Head, psi: np.ndarray | float) -> np.ndarray | float:
    """Depth of the inner skull table below the skin along ``psi``, mm."""
    return head.scalp + head.skull * _wave(psi, head.skull_wave)


class _Frame:
    """Per-pixel head-frame coordinates of one slice, shared by every drawing step."""

    def __init__(self, head: Head, section: Section) -> None:
        rows, cols = section.shape
        sp = section.spacing
        y = (np.arange(rows, dtype=np.float32) - (rows - 1) / 2) * sp - head.center[1]
        x = (np.arange(cols, dtype=np.float32) - (cols - 1) / 2) * sp - head.center[0]
        cos, sin = np.float32(np.cos(head.angle)), np.float32(np.sin(head.angle))
        self.image_y = y[:, None] + np.float32(head.center[1])
        self.image_x = x[None, :] + np.float32(head.center[0])
        self.x = x[None, :] * cos + y[:, None] * sin
        self.y = -x[None, :] * sin + y[:, None] * cos
        self.s = np.hypot(self.x, self.y)
        self.psi = np.arctan2(self.y, self.x)
        self.depth = outer_radius(head, self.psi, section.t) - self.s
        self.below_inner = self.depth - inner_depth(head, self.psi)
        self.head, self.section = head, section

    def to_pixel(self, psi: float, s: float) -> tuple[float, float]:
        """(column, row) of the head-frame point at angle ``psi`` and radius ``s``."""
        rows, cols = self.section.shape
        hx, hy = s * np.cos(psi), s * np.sin(psi)
        cos, sin = np.cos(self.head.angle), np.sin(self.head.angle)
        x = hx * cos - hy * sin + self.head.center[0]
        y = hx * sin + hy * cos + self.head.center[1]
        return x / self.section.spacing + (cols - 1) / 2, y / self.section.spacing + (rows - 1) / 2


def _lines(frame: _Frame, spokes: list[tuple[float, float]], width_mm: float) -> np.ndarray:
    """Mask of radial segments running ``depth`` mm inwards from the inner skull at each angle."""
    mask = np.zeros(frame.section.shape, np.uint8)
    thickness = max(1, int(round(width_mm / frame.section.spacing)))
    shift = 4
    for psi, depth in spokes:
        start = float(outer_radius(frame.head, psi, frame.section.t) - inner_depth(frame.head, psi))
        if start <= 0:
            continue
        end = max(0.0, start - depth)
        p0 = frame.to_pixel(psi, start + width_mm)
        p1 = frame.to_pixel(psi, end)
        cv2.line(
            mask,
            (int(round(p0[0] * 2**shift)), int(round(p0[1] * 2**shift))),
            (int(round(p1[0] * 2**shift)), int(round(p1[1] * 2**shift))),
            1,
            thickness,
            cv2.LINE_8,
            shift,
        )
    return mask.astype(bool)


def _ventricles(frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the right (x < 0 in the head frame) and left lateral ventricles.

    Two tilted ellipses, slightly anterior, whose frontal horns converge towards the midline.
    """
    scale = ventricle_scale(frame.head, frame.section.t)
    masks = (np.zeros(frame.section.shape, np.uint8), np.zeros(frame.section.shape, np.uint8))
    if scale <= 0:
        return masks[0].astype(bool), masks[1].astype(bool)
    va, vb = (v * scale for v in frame.head.ventricle_size)
    shift, sp = 4, frame.section.spacing
    for mask, side in zip(masks, (-1.0, 1.0)):
        tilt = -side * 0.3
        cx, cy = side * (va + 2.5), -0.15 * frame.head.axes[1] * head_scale(frame.section.t)
        col, row = frame.to_pixel(float(np.arctan2(cy, cx)), float(np.hypot(cx, cy)))
        cv2.ellipse(
            mask,
            (int(round(col * 2**shift)), int(round(row * 2**shift))),
            (int(round(va / sp * 2**shift)), int(round(vb / sp * 2**shift))),
            float(np.degrees(frame.head.angle + tilt)),
            0.0,
            360.0,
            1,
            -1,
            cv2.LINE_8,
            shift,
        )
    return masks[0].astype(bool), masks[1].astype(bool)


def _table(frame: _Frame) -> np.ndarray:
    """The patient table: a thin arc, concave upwards, in the scanner frame below the head."""
    if frame.head.table is None:
        return np.zeros(frame.section.shape, bool)
    gap, thickness, radius, _ = frame.head.table
    bottom = frame.head.center[1] + max(frame.head.axes) * 1.02 + gap
    dist = np.hypot(frame.image_x - frame.head.center[0], frame.image_y - (bottom - radius))
    return (np.abs(dist - radius) <= thickness / 2) & (frame.image_y > bottom - radius)


def _lesion_mask(frame: _Frame, lesion: Lesion, brain: np.ndarray, ventricles: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Where ``lesion`` lies on this slice, shaped and placed as its subtype is."""
    e = frame.below_inner
    intracranial = e >= 0
    off = np.abs(wrap(frame.psi - lesion.angle))
    c = lesion.scale
    if lesion.subtype in ("epidural", "subdural"):
        spread = lesion.spread * (0.6 + 0.4 * c)
        u = np.clip(1.0 - (off / spread) ** 2, 0.0, None)
        power = 0.5 if lesion.subtype == "epidural" else 0.3
        return intracranial & (off < spread) & (e < lesion.size * c * u**power)
    if lesion.subtype == "subarachnoid":
        spokes = [(psi, depth) for psi, depth in frame.head.sulci if abs(wrap(psi - lesion.angle)) < lesion.spread]
        band = intracranial & (off < lesion.spread) & (e < lesion.size * c)
        return (band | _lines(frame, spokes, lesion.size * 1.3 * c)) & brain
    if lesion.subtype == "intraparenchymal":
        reach = float(outer_radius(frame.head, lesion.angle, frame.section.t) - inner_depth(frame.head, lesion.angle))
        s0 = lesion.depth * reach
        dx, dy = frame.x - s0 * np.cos(lesion.angle), frame.y - s0 * np.sin(lesion.angle)
        phi = np.arctan2(dy, dx)
        wobble = 1.0 + 0.18 * np.cos(2 * phi + lesion.spread) + 0.1 * np.cos(3 * phi + 2 * lesion.spread)
        return (np.hypot(dx, dy) < lesion.size * c * wobble) & brain
    sides = {-1.0: (ventricles[0],), 1.0: (ventricles[1],), 0.0: ventricles}[float(lesion.depth)]
    vent = np.logical_or.reduce(sides)
    if not vent.any():
        return vent
    level = np.quantile(frame.y[vent], 1.0 - lesion.size)
    return vent & (frame.y >= level)


@dataclass(frozen=True)
class _Anatomy:
    """The masks of one slice's structures, before any lesion, noise or reconstruction circle."""

    head: np.ndarray
    skull: np.ndarray
    intracranial: np.ndarray
    ventricle_sides: tuple[np.ndarray, np.ndarray]
    """The right and left lateral ventricles, inside the skull."""
    ventricles: np.ndarray
    sulci: np.ndarray
    brain: np.ndarray
    table: np.ndarray


def render(rng: np.random.Generator, head: Head, section: Section) -> Phantom:
    """The slice ``section`` of ``head`` in HU, with the mask of every structure and lesion drawn.

    ``rng`` supplies the texture and noise only, so a fixed seed gives the same pixels.
    """
    if section.blank:
        return Phantom(np.full(section.shape, AIR_HU, np.float32))
    frame = _Frame(head, section)
    anatomy = _anatomy(frame)
    hu = _tissue(rng, frame, anatomy)
    lesions = _draw_lesions(hu, frame, anatomy)
    _add_noise(rng, hu, section, anatomy, lesions)
    fov = _field_of_view(hu, frame)
    regions = {
        "head": anatomy.head & fov,
        "skull": anatomy.skull & fov,
        "intracranial": anatomy.intracranial & fov,
        "ventricles": anatomy.ventricles & fov,
        "sulci": anatomy.sulci & fov,
        "table": anatomy.table & fov,
        "fov": fov,
    }
    return Phantom(hu, regions, {name: mask & fov for name, mask in lesions.items()})


def _anatomy(frame: _Frame) -> _Anatomy:
    """Where the scalp, skull, brain, ventricles, sulci and table lie on this slice."""
    head, d, e = frame.head, frame.depth, frame.below_inner
    head_mask = d >= 0
    skull = head_mask & (d >= head.scalp) & (e < 0)
    intracranial = e >= 0
    right, left = _ventricles(frame)
    ventricles = (right | left) & intracranial
    spokes = [(psi, depth) for psi, depth in head.sulci]
    sulci = _lines(frame, spokes, 1.0) & intracranial & ~ventricles
    brain = intracranial & ~ventricles
    table = _table(frame) & ~head_mask
    return _Anatomy(head_mask, skull, intracranial, (right & intracranial, left & intracranial), ventricles, sulci, brain, table)


def _tissue(rng: np.random.Generator, frame: _Frame, anatomy: _Anatomy) -> np.ndarray:
    """The slice's HU without lesions or noise: scalp, a layered skull, textured grey and white matter, CSF, table."""
    head, d, e = frame.head, frame.depth, frame.below_inner
    skull, brain = anatomy.skull, anatomy.brain
    hu = np.full(frame.section.shape, AIR_HU, np.float32)
    hu[anatomy.head] = SCALP_HU
    thickness = np.maximum(d[skull] - e[skull] - head.scalp, 1e-3)
    u = np.clip((d[skull] - head.scalp) / thickness, 0.0, 1.0)
    hu[skull] = head.diploe_hu + (head.cortical_hu - head.diploe_hu) * np.abs(2 * u - 1) ** 0.6
    low = rng.standard_normal((6, 6)).astype(np.float32) * 2.5
    texture = cv2.resize(low, (frame.section.shape[1], frame.section.shape[0]), interpolation=cv2.INTER_CUBIC)
    ribbon = head.cortex * (1.0 + 0.3 * np.cos(7 * frame.psi[brain]))
    grey = e[brain] < ribbon
    hu[brain] = np.where(grey, np.float32(head.grey_hu), np.float32(head.white_hu)) + texture[brain]
    hu[anatomy.sulci | anatomy.ventricles] = CSF_HU
    hu[anatomy.table] = head.table[3] if head.table is not None else AIR_HU
    return hu


def _draw_lesions(hu: np.ndarray, frame: _Frame, anatomy: _Anatomy) -> dict[str, np.ndarray]:
    """Draw the section's hemorrhages into ``hu``; the mask of each subtype drawn."""
    lesions: dict[str, np.ndarray] = {}
    for lesion in frame.section.lesions:
        mask = _lesion_mask(frame, lesion, anatomy.brain, anatomy.ventricle_sides)
        hu[mask] = lesion.hu
        lesions[lesion.subtype] = lesions.get(lesion.subtype, np.zeros(frame.section.shape, bool)) | mask
    return lesions


def _add_noise(rng: np.random.Generator, hu: np.ndarray, section: Section, anatomy: _Anatomy, lesions: dict[str, np.ndarray]) -> None:
    """Pixel noise over the head and table, then bone and blood kept within their ranges."""
    body = anatomy.head | anatomy.table
    hu[body] += rng.standard_normal(int(body.sum()), dtype=np.float32) * np.float32(section.noise_hu)
    np.clip(hu, BONE_RANGE[0], BONE_RANGE[1], out=hu, where=anatomy.skull)
    blood = np.logical_or.reduce(list(lesions.values())) if lesions else np.zeros(section.shape, bool)
    np.clip(hu, BLOOD_RANGE[0], BLOOD_RANGE[1], out=hu, where=blood)


def _field_of_view(hu: np.ndarray, frame: _Frame) -> np.ndarray:
    """The reconstruction circle (everywhere when the section has none); outside it ``hu`` becomes the padding value."""
    section = frame.section
    fov = np.ones(section.shape, bool)
    if section.fov > 0:
        radius = section.fov * min(section.shape) * section.spacing / 2
        fov = np.hypot(frame.image_x, frame.image_y) <= radius
        hu[~fov] = section.padding_hu
    return fov
