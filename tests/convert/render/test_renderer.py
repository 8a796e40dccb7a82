"""The renderer against the window formula: exact without resampling, within one grey level with it."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, RLELossless

from ichprep.convert.read import dicom
from ichprep.convert.render import resample
from ichprep.convert.render.renderer import Renderer
from ichprep.windows import FreqHist, Window, parse_windows

DEFAULT = parse_windows("brain,subdural,bone")
RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True, params=list(resample.ORDER))
def resampler(request, monkeypatch):
    """Every test runs with each backend, chosen by name as a user would (``ICHPREP_RESAMPLER``)."""
    if not resample.BACKENDS[request.param].available():
        pytest.skip(f"{request.param} is not available here (no C compiler at install, or no SIMD form for this CPU)")
    monkeypatch.setenv(resample.ENV, request.param)
    return request.param


def test_the_renderer_uses_the_backend_named(resampler):
    assert Renderer(DEFAULT).resampler is resample.BACKENDS[resampler]


def noisy_head(shape: tuple[int, int], intercept: float, dtype, seed: int = 0) -> np.ndarray:
    """Stored values of a noisy ellipse 'head' (brain near 40 HU, bone rim) in air, for ``intercept``."""
    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000.0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = ((yy - shape[0] * 0.45) / (shape[0] * 0.33)) ** 2 + ((xx - shape[1] * 0.5) / (shape[1] * 0.3)) ** 2
    hu[r <= 1.0] = 1200.0
    hu[r <= 0.8] = 40.0
    hu += rng.normal(0.0, 30.0, shape)
    hu[: shape[0] // 8, : shape[1] // 8] = rng.uniform(-1000.0, 3000.0, (shape[0] // 8, shape[1] // 8))
    return np.clip(np.round(hu - intercept), np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


U12 = noisy_head((64, 64), -1024.0, np.uint16)
U12_1000 = noisy_head((64, 64), -1000.0, np.uint16, seed=1)
S16 = noisy_head((64, 64), 0.0, np.int16, seed=2)
QUIRK = np.mod(noisy_head((64, 64), 0.0, np.int16, seed=3).astype(np.int64), 4096).astype(np.uint16)

GENERATED = {
    "uint16 BitsStored 12, intercept -1024": (U12, dict(bits_stored=12, intercept=-1024.0)),
    "uint16 BitsStored 12, intercept -1000": (U12_1000, dict(bits_stored=12, intercept=-1000.0)),
    "int16 BitsStored 16": (S16, dict(intercept=0.0)),
    "signed-as-unsigned quirk, intercept 0": (QUIRK, dict(bits_stored=12, intercept=0.0)),
    "RLE Lossless": (U12, dict(bits_stored=12, syntax=RLELossless)),
    "implicit VR": (S16, dict(intercept=0.0, syntax=ImplicitVRLittleEndian)),
    "no preamble, no file meta": (U12, dict(bits_stored=12, preamble=False)),
    "garbage high bits": (U12 | np.uint16(0xF000), dict(bits_stored=12)),
    "explicit VR big endian": (S16, dict(intercept=0.0, syntax=ExplicitVRBigEndian)),
}


def reference_hu_from_header(data: bytes, raw: np.ndarray | None = None) -> np.ndarray:
    """HU computed from pydicom's view of the file (spec §3.2), independent of ichprep.convert.read.dicom."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    pixels = ds.pixel_array if raw is None else raw
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    if ds.PixelRepresentation == 0 and ds.BitsStored == 12 and intercept > -100:
        return (np.mod(pixels.astype(np.int64) + 1000, 4096) - 1000).astype(np.float32)
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def slice_of(data: bytes) -> dicom.Slice:
    return dicom.decode(dicom.parse(data))


def assert_close_to(image: np.ndarray, expected: np.ndarray, name: str = "") -> None:
    """The resampled renderer's contract: no pixel off by more than one grey level, 99 % exact."""
    assert image.shape == expected.shape and image.dtype == np.uint8, name
    diff = np.abs(image.astype(int) - expected.astype(int))
    assert diff.max() <= 1, (name, diff.max())
    assert np.mean(diff == 0) >= 0.99, (name, np.mean(diff == 0))


def test_real_files_without_crop_at_their_size_are_exactly_the_window_formula(real_files, reference):
    renderer = Renderer(DEFAULT, size=512, crop=False)
    for path in real_files:
        data = path.read_bytes()
        image = renderer.render(slice_of(data))
        np.testing.assert_array_equal(image, reference.window_u8(reference_hu_from_header(data)), err_msg=path.name)


@pytest.mark.parametrize("kind", GENERATED)
def test_generated_slices_without_crop_at_their_size_are_exactly_the_window_formula(make_ct, reference, kind):
    raw, header = GENERATED[kind]
    data = make_ct(raw, **header)
    masked = raw & np.uint16(0x0FFF) if kind == "garbage high bits" else raw
    image = Renderer(DEFAULT, size=64, crop=False).render(slice_of(data))
    np.testing.assert_array_equal(image, reference.window_u8(reference_hu_from_header(data, masked)))


def test_quirk_slice_is_rendered_with_the_header_fix(make_ct, reference):
    data = make_ct(QUIRK, bits_stored=12, intercept=0.0)
    image = Renderer(DEFAULT, size=64, crop=False).render(slice_of(data))
    fixed_hu = (np.mod(QUIRK.astype(np.int64) + 1000, 4096) - 1000).astype(np.float64)
    np.testing.assert_array_equal(image, reference.window_u8(fixed_hu))
    assert not np.array_equal(image, reference.window_u8(QUIRK.astype(np.float64)))


def test_ct_small_without_crop_is_exactly_the_window_formula(ct_small, reference):
    data = ct_small.read_bytes()
    image = Renderer(DEFAULT, size=128, crop=False).render(slice_of(data))
    np.testing.assert_array_equal(image, reference.window_u8(reference_hu_from_header(data)))


@pytest.mark.parametrize("spec", ["brain", "bone,brain,subdural,stroke", "-600/1500,soft", "40/80,80/200,600/2800"])
def test_any_window_list_is_exact_without_resampling(make_ct, reference, spec):
    data = make_ct(S16, intercept=0.0)
    windows = parse_windows(spec)
    image = Renderer(windows, size=64, crop=False).render(slice_of(data))
    expected = reference.window_u8(S16.astype(np.float64), [(w.level, w.width) for w in windows])
    np.testing.assert_array_equal(image, expected)


def test_freqhist_channel_is_exact_without_resampling(make_ct):
    breaks = (-1000.0, -100.0, 0.0, 20.0, 40.0, 60.0, 500.0, 3000.0)
    data = make_ct(S16, intercept=0.0)
    image = Renderer([Window("brain", 40, 80), FreqHist("freqhist", breaks)], size=64, crop=False).render(slice_of(data))
    unit = np.interp(S16.astype(np.float64), breaks, np.linspace(0.0, 1.0, len(breaks)))
    np.testing.assert_array_equal(image[..., 1], np.floor(unit * 255.0 + 0.5).astype(np.uint8))


def test_bgr_rendering_is_the_rgb_image_reversed(make_ct):
    renderer = Renderer(DEFAULT, size=40, crop=True)
    sl = slice_of(make_ct(U12, bits_stored=12))
    np.testing.assert_array_equal(renderer.render(sl, bgr=True), renderer.render(sl)[..., ::-1])


def test_real_files_with_default_crop_and_size_are_the_area_resized_formula(real_files, reference):
    renderer = Renderer(DEFAULT)
    for path in real_files:
        data = path.read_bytes()
        sl = slice_of(data)
        square = renderer.square(sl)
        assert square.side <= 512, path.name
        expected = reference.resampled(reference_hu_from_header(data), square, 256)
        assert_close_to(renderer.render(sl), expected, path.name)


@pytest.mark.parametrize("kind", GENERATED)
@pytest.mark.parametrize("crop, size", [(True, 48), (False, 48), (False, 100)])
def test_generated_slices_resampled_are_the_area_resized_formula(make_ct, reference, kind, crop, size):
    raw, header = GENERATED[kind]
    data = make_ct(raw, **header)
    masked = raw & np.uint16(0x0FFF) if kind == "garbage high bits" else raw
    renderer = Renderer(DEFAULT, size=size, crop=crop)
    sl = slice_of(data)
    expected = reference.resampled(reference_hu_from_header(data, masked), renderer.square(sl), size)
    assert_close_to(renderer.render(sl), expected, kind)


@pytest.mark.parametrize("crop, size", [(False, 64), (True, 48), (False, 100)])
def test_a_slice_of_32_bit_values_renders_as_the_formula_without_a_table(reference, crop, size):
    """Stored values too many to tabulate: exactly the formula at the slice's own size, the area-resized formula otherwise."""
    raw = S16.astype(np.int32) * 3
    sl = dicom.Slice(raw, 1.0, -2000.0, False)
    renderer = Renderer(DEFAULT, size=size, crop=crop)
    hu = raw.astype(np.float64) - 2000.0
    if renderer.square(sl).side == size:
        np.testing.assert_array_equal(renderer.render(sl), reference.window_u8(hu))
    else:
        assert_close_to(renderer.render(sl), reference.resampled(hu, renderer.square(sl), size))


def circle_hu(shape: tuple[int, int], radius: float) -> np.ndarray:
    hu = np.full(shape, -1000.0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    hu[np.hypot(yy - (shape[0] - 1) / 2, xx - (shape[1] - 1) / 2) <= radius] = 60.0
    return hu


@pytest.mark.parametrize("shape", [(256, 218), (218, 256), (512, 436)])
def test_non_square_slice_without_crop_is_padded_symmetrically_not_distorted(make_ct, reference, shape):
    hu = circle_hu(shape, 100.0)
    data = make_ct((hu + 1024).astype(np.uint16), bits_stored=12)
    size = 128
    image = Renderer(DEFAULT, size=size, crop=False).render(slice_of(data))
    side = max(shape)
    pad_y, pad_x = (side - shape[0]) // 2, (side - shape[1]) // 2
    assert abs((side - shape[0]) - 2 * pad_y) <= 1 and abs((side - shape[1]) - 2 * pad_x) <= 1
    expected = reference.resampled(hu, (-pad_y, -pad_x, side), size)
    assert_close_to(image, expected)
    disc = image[..., 0] > 127
    rows, cols = np.nonzero(disc.any(axis=1))[0], np.nonzero(disc.any(axis=0))[0]
    assert abs((rows[-1] - rows[0]) - (cols[-1] - cols[0])) <= 1
    assert abs((rows[0] + rows[-1]) / 2 - (size - 1) / 2) <= 1 and abs((cols[0] + cols[-1]) / 2 - (size - 1) / 2) <= 1


def test_crop_keeps_the_head_and_drops_the_table(make_ct, phantom, reference):
    hu = phantom((128, 128), (50.0, 64.0), (30.0, 40.0), table_row=105, ring=True)
    data = make_ct(np.round(hu + 1024).astype(np.uint16), bits_stored=12)
    renderer = Renderer(DEFAULT, size=64, crop=True)
    sl = slice_of(data)
    square = renderer.square(sl)
    y0, x0, side = square
    assert y0 <= 20 and y0 + side >= 81 and x0 <= 24 and x0 + side >= 105
    assert y0 + side <= 105
    assert_close_to(renderer.render(sl), reference.resampled(hu, square, 64))


@pytest.mark.parametrize("shape", [(128, 128), (128, 100)])
def test_empty_slice_with_crop_keeps_the_full_slice(make_ct, shape):
    air = np.full(shape, 24, dtype=np.uint16)
    sl = slice_of(make_ct(air, bits_stored=12))
    side = max(shape)
    assert Renderer(DEFAULT, size=64, crop=True).square(sl) == ((shape[0] - side) // 2, (shape[1] - side) // 2, side)


def test_head_filling_the_slice_is_not_zoomed_out_by_the_crop(make_ct, reference):
    hu = np.round(np.random.default_rng(5).normal(37.0, 20.0, (128, 128)))
    data = make_ct((hu + 1024).astype(np.uint16), bits_stored=12)
    renderer = Renderer(DEFAULT, size=64, crop=True)
    sl = slice_of(data)
    assert renderer.square(sl) == (0, 0, 128)
    assert_close_to(renderer.render(sl), reference.resampled(hu, (0, 0, 128), 64))


def test_renderer_refuses_no_channels_too_many_channels_and_a_zero_size():
    with pytest.raises(ValueError):
        Renderer([], size=64)
    with pytest.raises(ValueError):
        Renderer(parse_windows("brain,subdural,bone,soft") + parse_windows("stroke"), size=64)
    with pytest.raises(ValueError):
        Renderer(DEFAULT, size=0)
