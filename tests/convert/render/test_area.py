"""The compiled resampling kernel against OpenCV's float64 area resize of the looked-up words.

Every instruction set the machine has is checked (0 = plain C, 1 = SSE2, 2 = AVX2): each must
be within one grey level of the float reference everywhere and equal to it on 99.9 % of bytes,
over squares inside the slice, past every edge and corner and wholly outside it, downscales by
less than two, by exactly two and by more, and one to four channels.
"""

from __future__ import annotations

import numpy as np
import pytest

from ichprep.convert.render import resample
from ichprep.convert.render.renderer import Renderer

_area = pytest.importorskip("ichprep.convert.render._area", reason="the kernel is compiled at install where a C compiler exists")
ISAS = list(range(_area.best_isa() + 1))


def reference(raw: np.ndarray, words: np.ndarray, pad_index: int, y0: int, x0: int, side: int, size: int, channels: int) -> np.ndarray:
    """Crop with padding, look up, area-resize in float64 (OpenCV), round half up: an independent computation."""
    import cv2

    big = np.full((raw.shape[0] + 2 * side, raw.shape[1] + 2 * side), pad_index, raw.dtype)
    big[side : side + raw.shape[0], side : side + raw.shape[1]] = raw
    crop = big[side + y0 : side + y0 + side, side + x0 : side + x0 + side]
    lanes = np.take(words, crop).view(np.uint16).reshape(side, side, 4).astype(np.float64)
    mean = cv2.resize(lanes, (size, size), interpolation=cv2.INTER_AREA)
    return np.minimum(np.floor(mean[..., :channels] / 256 + 0.5), 255).astype(np.uint8)


def head(shape: tuple[int, int], rng: np.random.Generator, dtype=np.uint16) -> np.ndarray:
    """A smooth head-like slice: air near 0, tissue 1000-1100, a bright skull ring, noise."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    yy, xx = yy / shape[0] - 0.5, xx / shape[1] - 0.5
    r = np.sqrt((xx / 0.38) ** 2 + (yy / 0.45) ** 2)
    image = np.where(r < 1, 1000 + 100 * (0.5 + 0.5 * np.cos(6 * xx) * np.sin(5 * yy)), 0.0)
    image = np.where((r > 0.9) & (r < 1), 2000, image) + rng.normal(0, 12, image.shape)
    image = np.clip(image, 0, 3000)
    if dtype == np.uint8:
        image = image / 3000 * 255
    return np.round(image).astype(dtype)


def random_words(count: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 65281, (count, 4)).astype(np.uint16).view(np.uint64).ravel().copy()


def window_words(count: int) -> np.ndarray:
    """Three windows' 8.8 grey levels of every stored value, as the renderer's tables hold them."""
    value = np.arange(count, dtype=np.float64)
    lanes = np.zeros((count, 4), np.uint16)
    for lane, (lo, hi) in enumerate([(950, 1150), (750, 1550), (900, 1200)]):
        lanes[:, lane] = np.round(np.clip((value - lo) / (hi - lo), 0, 1) * 65280)
    return lanes.view(np.uint64).ravel().copy()


def squares(height: int, width: int, rng: np.random.Generator) -> list[tuple[int, int, int, int, int]]:
    """(y0, x0, side, size, channels): the renderer's cases, every edge, and random ones."""
    cases = []
    scales = [(430, 256), (300, 256), (512, 256), (256, 256), (700, 256), (512, 100), (257, 256), (333, 111), (9, 4), (3, 1)]
    for side, size in scales:
        corners = [((height - side) // 2, (width - side) // 2), (-side // 3, 5), (7, -side // 4),
                   (height - side // 2, width - side // 2), (height, 0), (-side, -side)]
        for y0, x0 in corners:
            for channels in (1, 2, 3, 4) if side in (430, 9) else (3,):
                cases.append((y0, x0, side, size, channels))
    for _ in range(12):
        side = int(rng.integers(1, 600))
        y0, x0 = int(rng.integers(-side, height)), int(rng.integers(-side, width))
        cases.append((y0, x0, side, int(rng.integers(1, side + 1)), int(rng.integers(1, 5))))
    return cases


def data_sets() -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    rng = np.random.default_rng(5)
    words = random_words(65536, rng)
    return {
        "uint16 random values": (rng.integers(0, 3001, (512, 512)).astype(np.uint16), words, 0),
        "uint16 head, window table": (head((512, 512), rng), window_words(65536), 0),
        "uint16 head 384 x 448": (head((384, 448), rng), words, 7),
        "uint16 full range": (rng.integers(0, 65536, (300, 500)).astype(np.uint16), words, 65535),
        "uint8 head, 256 words": (head((512, 512), rng, np.uint8), random_words(256, rng), 3),
    }


@pytest.mark.parametrize("name", list(data_sets()))
def test_every_instruction_set_is_the_float_area_resize_within_one_grey_level(name):
    raw, words, pad_index = data_sets()[name]
    different = compared = 0
    for y0, x0, side, size, channels in squares(*raw.shape, np.random.default_rng(len(name))):
        expected = reference(raw, words, pad_index, y0, x0, side, size, channels)
        for isa in ISAS:
            out = np.empty((size, size, channels), np.uint8)
            _area.area_isa(isa, raw, words, int(words[pad_index]), y0, x0, side, size, channels, out)
            diff = np.abs(out.astype(int) - expected)
            assert diff.max() <= 1, (name, isa, (y0, x0, side, size, channels), diff.max())
            different += int(np.count_nonzero(diff))
            compared += diff.size
    assert different <= 0.001 * compared, (name, different / compared)


def test_a_constant_region_halfway_between_grey_levels_rounds_up_at_every_scale():
    raw = np.full((64, 64), 5, np.uint16)
    words = np.zeros(65536, np.uint64)
    words[5] = np.array([128, 256 * 7 + 128, 256 * 254 + 128, 65280], np.uint16).view(np.uint64)[0]
    for side in range(1, 64):
        for size in range(1, side + 1):
            for isa in ISAS:
                out = np.empty((size, size, 3), np.uint8)
                _area.area_isa(isa, raw, words, int(words[5]), -3, 2, side, size, 3, out)
                assert (out == np.array([1, 8, 255], np.uint8)).all(), (side, size, isa)


def test_the_default_call_uses_the_best_instruction_set():
    rng = np.random.default_rng(1)
    raw, words = head((512, 512), rng), random_words(65536, rng)
    chosen, forced = np.empty((256, 256, 3), np.uint8), np.empty((256, 256, 3), np.uint8)
    _area.area(raw, words, 0, 40, 41, 430, 256, 3, chosen)
    _area.area_isa(_area.best_isa(), raw, words, 0, 40, 41, 430, 256, 3, forced)
    np.testing.assert_array_equal(chosen, forced)


@pytest.mark.parametrize(
    "raw, words, side, size, channels, out_bytes, error",
    [
        (np.zeros((8, 8), np.int32), np.zeros(65536, np.uint64), 8, 4, 3, 48, TypeError),
        (np.zeros(64, np.uint16), np.zeros(65536, np.uint64), 8, 4, 3, 48, TypeError),
        (np.zeros((8, 8), ">u2"), np.zeros(65536, np.uint64), 8, 4, 3, 48, TypeError),
        (np.zeros((8, 8), np.uint16), np.zeros(65536, np.float64), 8, 4, 3, 48, TypeError),
        (np.zeros((8, 8), np.uint16), np.zeros(256, np.uint64), 8, 4, 3, 48, ValueError),
        (np.zeros((8, 8), np.uint16), np.zeros(65536, np.uint64), 4, 8, 3, 192, ValueError),
        (np.zeros((8, 8), np.uint16), np.zeros(65536, np.uint64), 8, 4, 5, 80, ValueError),
        (np.zeros((8, 8), np.uint16), np.zeros(65536, np.uint64), 8, 4, 3, 47, ValueError),
    ],
    ids=["int32 raw", "1-D raw", "big-endian raw", "float table", "a table too short", "an upscale", "five channels", "out too small"],
)
def test_wrong_arguments_raise_instead_of_reading_or_writing_out_of_bounds(raw, words, side, size, channels, out_bytes, error):
    with pytest.raises(error):
        _area.area(raw, words, 0, 0, 0, side, size, channels, np.empty(out_bytes, np.uint8))


def test_the_renderer_resamples_a_cropped_slice_with_the_kernel_where_it_has_simd(monkeypatch, make_ct):
    if _area.best_isa() == 0:
        pytest.skip("no SIMD form of the kernel for this CPU: the renderer uses OpenCV")
    monkeypatch.delenv(resample.ENV, raising=False)
    calls = []

    class Spy:
        best_isa = staticmethod(_area.best_isa)

        @staticmethod
        def area(*args):
            calls.append(args[3:8])
            return _area.area(*args)

    monkeypatch.setattr(resample, "_area", Spy)
    from ichprep.convert.read import dicom
    from ichprep.windows import parse_windows

    raw = head((128, 128), np.random.default_rng(2))
    sl = dicom.decode(dicom.parse(make_ct(raw, bits_stored=12, intercept=-1024.0)))
    renderer = Renderer(parse_windows("brain,subdural,bone"), size=48)
    image = renderer.render(sl)
    assert renderer.resampler is resample.BACKENDS["kernel"]
    assert image.shape == (48, 48, 3) and calls == [(*renderer.square(sl), 48, 3)]
    assert resample.pick().describe().startswith("compiled kernel")
