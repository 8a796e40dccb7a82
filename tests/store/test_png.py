"""ichprep's own PNG writer: exact pixels through OpenCV and Pillow, with ISA-L's deflate and with zlib's."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from ichprep.store import images
from ichprep.store.images import decode, encode, encode_bgr, png_bytes

RNG = np.random.default_rng(5)
RGB = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.fixture(params=["isal", "zlib"])
def deflater(request, monkeypatch):
    """Run a test with ISA-L's deflate (skipped when not installed) and with the zlib fallback."""
    if request.param == "isal":
        if images.isal_zlib is None:
            pytest.skip("isal not installed")
    else:
        monkeypatch.setattr(images, "isal_zlib", None)
    return request.param


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 1), (37, 53, 3), (37, 53, 4), (1, 1, 3), (256, 256, 3)])
def test_png_bytes_decode_to_the_exact_pixels_in_opencv_and_pillow(deflater, shape):
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    data = png_bytes(pixels)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == {1: "L", 3: "RGB", 4: "RGBA"}[1 if len(shape) == 2 else shape[2]]
        np.testing.assert_array_equal(np.asarray(im).reshape(shape), pixels)
    cv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    expected = pixels.reshape(shape[:2]) if len(shape) == 2 or shape[2] == 1 else pixels[..., [2, 1, 0, 3][: shape[2]]]
    np.testing.assert_array_equal(cv, expected)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_encode_bgr_png_is_what_opencv_writes_and_reads_back(deflater, channels):
    bgr = RNG.integers(0, 256, (20, 30, channels), dtype=np.uint8)
    ours = cv2.imdecode(np.frombuffer(encode_bgr(bgr, "png"), np.uint8), cv2.IMREAD_UNCHANGED)
    theirs = cv2.imdecode(cv2.imencode(".png", bgr)[1], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours.reshape(bgr.shape), bgr)


def test_rgb_round_trip_through_encode_and_decode(deflater):
    np.testing.assert_array_equal(decode(encode(RGB, "png")), RGB)
    np.testing.assert_array_equal(decode(encode_bgr(np.ascontiguousarray(RGB[..., ::-1]), "png")), RGB)


def test_png_of_a_head_like_image_is_no_larger_than_opencvs_with_the_same_settings(deflater):
    """OpenCV at level 1 with the run-length strategy and the 'up' filter was ichprep's writer before."""
    yy, xx = np.mgrid[:256, :256]
    disc = np.hypot(yy - 128, xx - 128) < 100
    noisy = np.clip(120 + RNG.normal(0, 6, (256, 256)), 0, 255)
    image = np.stack([np.where(disc, noisy, 0), np.where(disc, noisy / 2, 0), np.where(disc, 30, 0)], axis=-1).astype(np.uint8)
    settings = [
        cv2.IMWRITE_PNG_COMPRESSION,
        1,
        cv2.IMWRITE_PNG_STRATEGY,
        cv2.IMWRITE_PNG_STRATEGY_RLE,
        cv2.IMWRITE_PNG_FILTER,
        cv2.IMWRITE_PNG_FILTER_UP,
    ]
    opencv = cv2.imencode(".png", image[..., ::-1], settings)[1].size
    assert len(png_bytes(image)) <= 1.01 * opencv


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint16), np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4, 3), np.uint8)])
def test_images_png_cannot_hold_are_refused(bad):
    with pytest.raises(ValueError):
        png_bytes(bad)
