"""PNG and 4:4:4 JPEG image files: channel order, chroma sampling, atomic writes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ichprep.store.images import ImageFiles, decode, encode, encode_bgr

RNG = np.random.default_rng(3)
IMAGE = RNG.integers(0, 256, (40, 48, 3), dtype=np.uint8)


def jpeg_sampling_factors(data: bytes) -> list[tuple[int, int]]:
    """(horizontal, vertical) sampling factor of each component, read from the JPEG's SOF segment."""
    pos = 2
    while pos < len(data):
        assert data[pos] == 0xFF
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            count = data[pos + 9]
            components = data[pos + 10 : pos + 10 + 3 * count]
            return [(components[i + 1] >> 4, components[i + 1] & 15) for i in range(0, len(components), 3)]
        pos += 2 + length
    raise AssertionError("no SOF segment")


def stripes() -> np.ndarray:
    """One-pixel stripes, different in each channel: what 4:2:0 chroma subsampling smears."""
    yy, xx = np.mgrid[:64, :64]
    return np.stack([(xx % 2) * 255, (yy % 2) * 255, ((xx + yy) % 2) * 255], axis=-1).astype(np.uint8)


def test_png_round_trip_is_exact_and_stored_as_bgr():
    data = encode(IMAGE, "png")
    np.testing.assert_array_equal(decode(data), IMAGE)
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], IMAGE)


def test_grey_image_round_trips_as_one_channel():
    grey = IMAGE[..., 0].copy()
    np.testing.assert_array_equal(decode(encode(grey, "png")), grey)


@pytest.mark.parametrize("fmt", ["jpg", "jpeg"])
def test_jpeg_is_written_with_444_chroma_sampling(fmt):
    data = encode(stripes(), fmt)
    assert data[:2] == b"\xff\xd8"
    assert jpeg_sampling_factors(data) == [(1, 1), (1, 1), (1, 1)]


def test_jpeg_keeps_per_channel_detail_that_420_loses():
    image = stripes()
    ours = decode(encode(image, "jpg", 95)).astype(int)
    ok, buf = cv2.imencode(
        ".jpg",
        np.ascontiguousarray(image[..., ::-1]),
        [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420],
    )
    assert ok and jpeg_sampling_factors(buf.tobytes())[0] == (2, 2)
    subsampled = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(int)
    ours_error = np.abs(ours - image).mean()
    assert ours_error < 10
    assert ours_error * 3 < np.abs(subsampled - image).mean()


def test_jpeg_quality_changes_the_bytes():
    assert len(encode(IMAGE, "jpg", 50)) < len(encode(IMAGE, "jpg", 100))


def test_encode_bgr_takes_opencv_channel_order():
    np.testing.assert_array_equal(decode(encode_bgr(np.ascontiguousarray(IMAGE[..., ::-1]), "png")), IMAGE)


def test_unknown_format_is_refused():
    with pytest.raises(KeyError):
        encode(IMAGE, "gif")


@pytest.mark.parametrize("fmt, ext", [("png", "png"), ("jpg", "jpg"), ("jpeg", "jpg")])
def test_sink_writes_out_id_dot_ext_and_nothing_else(tmp_path, fmt, ext):
    sink = ImageFiles(str(tmp_path), fmt).open(0, 1)
    name, row = sink.write("ID_abc", np.ascontiguousarray(IMAGE[..., ::-1]))
    sink.close()
    assert (name, row) == (f"ID_abc.{ext}", None)
    assert [p.name for p in tmp_path.iterdir()] == [name]
    written = cv2.imread(str(tmp_path / name), cv2.IMREAD_COLOR)[..., ::-1]
    if ext == "png":
        np.testing.assert_array_equal(written, IMAGE)
    else:
        assert np.abs(written.astype(int) - IMAGE).mean() < 12
