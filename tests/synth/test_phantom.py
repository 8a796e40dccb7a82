"""The phantom: CT densities, anatomy that varies with patient and level, hemorrhages where their subtype lies."""

from __future__ import annotations

from collections import defaultdict

import cv2
import numpy as np
import pytest

from ichprep import synth
from ichprep.synth.phantom import Phantom

SIZE = 256
HEMORRHAGES = ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural"]


@pytest.fixture(scope="module")
def drawn() -> list[tuple[synth.SliceSpec, Phantom]]:
    """Every slice of two small sets, drawn (about 1 ms each at 256 px)."""
    specs = synth.plan(120, 11, SIZE) + synth.plan(120, 12, SIZE)
    return [(spec, synth.phantom(spec)) for spec in specs]


def disk(mm: float, spacing: float) -> np.ndarray:
    side = max(1, int(round(mm / spacing)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))


def mm_from_skull(phantom: Phantom, spacing: float) -> np.ndarray:
    """Distance of every pixel to the nearest bone pixel, mm."""
    not_bone = (~phantom.regions["skull"]).astype(np.uint8)
    return cv2.distanceTransform(not_bone, cv2.DIST_L2, 5) * spacing


def test_tissues_have_their_ct_densities(drawn: list[tuple[synth.SliceSpec, Phantom]]) -> None:
    for spec, phantom in drawn:
        if spec.section.blank:
            assert (phantom.hu == -1000).all()
            continue
        hu, regions = np.rint(phantom.hu), phantom.regions
        lesion = np.logical_or.reduce([np.zeros_like(regions["fov"]), *phantom.lesions.values()])
        assert (hu[regions["fov"] & ~regions["head"] & ~regions["table"]] == -1000).all()
        assert hu[regions["skull"]].min() >= 700 and hu[regions["skull"]].max() <= 1800
        brain = regions["intracranial"] & ~regions["ventricles"] & ~regions["sulci"] & ~lesion
        if brain.sum() > 500:
            assert 24 <= hu[brain].mean() <= 42
            assert 3.5 <= hu[brain].std() <= 8
        csf = regions["ventricles"] & ~lesion
        if csf.sum() > 50:
            assert abs(hu[csf].mean() - 6) < 2


def test_heads_differ_between_patients_and_shrink_towards_the_vertex(drawn: list[tuple[synth.SliceSpec, Phantom]]) -> None:
    areas: dict[str, list[tuple[float, int]]] = defaultdict(list)
    centres = set()
    for spec, phantom in drawn:
        if spec.section.blank or spec.section.shape[0] != spec.section.shape[1]:
            continue
        areas[spec.series_uid].append((spec.z, int(phantom.regions["head"].sum())))
        centres.add(spec.head.center)
    assert len(centres) == len(areas) >= 10
    widest = [max(a for _, a in series) for series in areas.values()]
    assert max(widest) > 1.15 * min(widest)
    for series in areas.values():
        by_z = [a for _, a in sorted(series)]
        if len(by_z) >= 10:
            assert by_z[-1] < 0.85 * max(by_z)


def test_ventricles_and_the_table_appear_on_some_slices_only(drawn: list[tuple[synth.SliceSpec, Phantom]]) -> None:
    shown = [(p.regions["ventricles"].any(), p.regions["table"].any()) for s, p in drawn if not s.section.blank]
    ventricles, table = np.array(shown).T
    assert 0.2 < ventricles.mean() < 0.9
    assert 0.2 < table.mean() < 0.9


def test_labels_match_the_lesions_drawn_and_blood_is_55_to_85_hu(drawn: list[tuple[synth.SliceSpec, Phantom]]) -> None:
    for spec, phantom in drawn:
        drawn_subtypes = {name for name, mask in phantom.lesions.items() if mask.any()}
        labelled = {name for name, label in zip(HEMORRHAGES, spec.labels) if label}
        assert drawn_subtypes == labelled
        hu = np.rint(phantom.hu)
        for mask in phantom.lesions.values():
            assert hu[mask].min() >= 55 and hu[mask].max() <= 85


def test_each_subtype_lies_and_is_shaped_where_it_should(drawn: list[tuple[synth.SliceSpec, Phantom]]) -> None:
    seen = set()
    for spec, phantom in drawn:
        sp, regions = spec.section.spacing, phantom.regions
        for name, mask in phantom.lesions.items():
            seen.add(name)
            assert not (mask & ~regions["intracranial"]).any(), name
            from_skull = mm_from_skull(phantom, sp)[mask]
            core = cv2.erode(mask.astype(np.uint8), disk(7, sp)).sum() / mask.sum()  # share deeper than 3.5 mm
            if name in ("epidural", "subdural"):
                assert from_skull.min() <= 1.5 * sp, "an extra-axial collection touches the inner table"
                assert from_skull.max() <= (24 if name == "epidural" else 14)
            elif name == "intraparenchymal":
                assert not (mask & regions["ventricles"]).any()
                assert np.median(from_skull) > 10 and core > 0.35, "a blob inside the brain"
            elif name == "intraventricular":
                assert not (mask & ~regions["ventricles"]).any()
            elif name == "subarachnoid":
                assert not (mask & regions["ventricles"]).any()
                assert from_skull.max() <= 40 and core < 0.3, "thin lines along sulci and the surface"
    assert seen == set(HEMORRHAGES)


def test_epidural_is_a_lens_and_subdural_a_crescent(drawn: list[tuple[synth.SliceSpec, Phantom]]) -> None:
    """Both hug the skull; the epidural is short and thick, the subdural long and thin."""
    ratios: dict[str, list[float]] = defaultdict(list)
    for spec, phantom in drawn:
        for name in ("epidural", "subdural"):
            mask = phantom.lesions.get(name)
            if mask is None or mask.sum() < 50:
                continue
            thickness = mm_from_skull(phantom, spec.section.spacing)[mask].max()
            area = mask.sum() * spec.section.spacing**2
            ratios[name].append(area / thickness**2)  # ~ length / thickness
    assert ratios["epidural"] and ratios["subdural"]
    assert np.median(ratios["subdural"]) > 2 * np.median(ratios["epidural"])


def test_every_lesion_stays_visible_at_64_px(drawn: list[tuple[synth.SliceSpec, Phantom]]) -> None:
    """At 64 px some pixels away from bone are mostly blood and read well above brain (about 30 HU)."""
    for spec, phantom in drawn:
        if not phantom.lesions:
            continue
        small = cv2.resize(np.rint(phantom.hu), (64, 64), interpolation=cv2.INTER_AREA)
        bone = cv2.resize(phantom.regions["skull"].astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
        for name, mask in phantom.lesions.items():
            cover = cv2.resize(mask.astype(np.float32), (64, 64), interpolation=cv2.INTER_AREA)
            clear = (cover >= 0.5) & (bone == 0) & (small >= 48)
            assert clear.sum() >= 4, (spec.image_id, name)
