"""Head box and square crop on synthetic phantoms whose geometry is known."""

from __future__ import annotations

import numpy as np
import pytest

from ichprep.convert.render import geometry
from ichprep.convert.render.geometry import Box, Square


def head_box_of(hu: np.ndarray) -> Box:
    step = geometry.coarse_step(hu.shape)
    return geometry.head_box(hu[::step, ::step], step, hu.shape)


def ellipse_bounds(centre: tuple[float, float], axes: tuple[float, float]) -> Box:
    """Pixel bounds (half open) of the ellipse drawn by the ``phantom`` fixture."""
    cy, cx = centre
    ay, ax = axes
    return Box(int(np.ceil(cy - ay)), int(np.ceil(cx - ax)), int(np.floor(cy + ay)) + 1, int(np.floor(cx + ax)) + 1)


@pytest.mark.parametrize(
    "shape, centre, axes, table_row",
    [
        ((128, 128), (55.0, 64.0), (30.0, 38.0), 100),
        ((512, 512), (230.0, 250.0), (150.0, 120.0), 420),
        ((256, 200), (110.0, 90.0), (70.0, 60.0), 200),
    ],
)
def test_head_box_is_the_head_and_stops_above_the_table_and_ring(phantom, shape, centre, axes, table_row):
    hu = phantom(shape, centre, axes, table_row=table_row, ring=True)
    box = head_box_of(hu)
    head = ellipse_bounds(centre, axes)
    slack = 2 * geometry.coarse_step(shape)
    assert all(abs(a - b) <= slack for a, b in zip(box, head)), (box, head)
    assert box.y1 <= table_row, (box, table_row)


@pytest.mark.parametrize(
    "shape, centre, axes, table_row",
    [
        ((128, 128), (55.0, 64.0), (30.0, 38.0), 100),
        ((512, 512), (230.0, 250.0), (150.0, 120.0), 420),
        ((256, 200), (110.0, 90.0), (70.0, 60.0), 200),
        ((512, 512), (280.0, 256.0), (200.0, 190.0), 490),
    ],
)
def test_crop_square_with_the_renderers_margin_holds_the_whole_head(phantom, shape, centre, axes, table_row):
    hu = phantom(shape, centre, axes, table_row=table_row, ring=True)
    margin = int(round(max(shape) * geometry.MARGIN_FRACTION))
    square = geometry.square_around(head_box_of(hu), shape, margin)
    head = ellipse_bounds(centre, axes)
    assert contains(square, head), (square, head)
    assert square.side < max(shape)


def test_empty_slice_gives_the_full_image():
    hu = np.full((128, 96), -1000.0, dtype=np.float32)
    assert head_box_of(hu) == Box(0, 0, 128, 96)


def test_only_thin_structures_give_the_full_image(phantom):
    hu = phantom((128, 128), (60.0, 60.0), (0.5, 0.5), table_row=110, ring=True)
    assert head_box_of(hu) == Box(0, 0, 128, 128)


def test_a_speck_smaller_than_a_head_gives_the_full_image():
    hu = np.full((128, 128), -1000.0, dtype=np.float32)
    hu[60:66, 60:66] = 40.0
    assert geometry.MIN_HEAD_FRACTION * hu.size * 2 > 36
    assert head_box_of(hu) == Box(0, 0, 128, 128)


def test_coarse_step_brings_the_short_side_near_64():
    assert [geometry.coarse_step(s) for s in [(512, 512), (512, 436), (128, 128), (100, 300), (1024, 2048)]] == [8, 6, 2, 1, 16]


def contains(square: Square, box: Box) -> bool:
    return square.y0 <= box.y0 and square.x0 <= box.x0 and square.y0 + square.side >= box.y1 and square.x0 + square.side >= box.x1


def inside(square: Square, shape: tuple[int, int]) -> bool:
    return square.y0 >= 0 and square.x0 >= 0 and square.y0 + square.side <= shape[0] and square.x0 + square.side <= shape[1]


@pytest.mark.parametrize(
    "box, shape, margin",
    [
        (Box(100, 120, 400, 380), (512, 512), 16),
        (Box(0, 0, 300, 200), (512, 512), 16),
        (Box(300, 400, 512, 512), (512, 512), 10),
        (Box(50, 60, 51, 61), (128, 128), 0),
    ],
)
def test_square_around_holds_the_box_with_margin_inside_the_image(box, shape, margin):
    square = geometry.square_around(box, shape, margin)
    grown = Box(max(box.y0 - margin, 0), max(box.x0 - margin, 0), min(box.y1 + margin, shape[0]), min(box.x1 + margin, shape[1]))
    assert square.side == max(grown.y1 - grown.y0, grown.x1 - grown.x0)
    assert contains(square, grown)
    assert inside(square, shape)


@pytest.mark.parametrize("shape", [(512, 512), (128, 96), (96, 128)])
def test_square_around_the_full_image_with_a_margin_is_the_full_square(shape):
    full = geometry.square_around(Box(0, 0, *shape), shape, margin=16)
    assert full == geometry.full_square(shape)
    assert full.side == max(shape)


def test_square_around_is_centred_on_the_box_when_there_is_room():
    square = geometry.square_around(Box(200, 100, 300, 400), (512, 512))
    assert square == Square(100, 100, 300)


def test_square_around_centres_on_an_axis_too_short_for_it():
    square = geometry.square_around(Box(0, 20, 100, 280), (100, 300))
    assert square.side == 260
    assert square.y0 == (100 - 260) // 2
    top, bottom = -square.y0, square.y0 + square.side - 100
    assert abs(top - bottom) <= 1
    assert square.x0 >= 0 and square.x0 + square.side <= 300


def test_full_square_pads_the_short_side_symmetrically():
    assert geometry.full_square((512, 436)) == Square(0, -38, 512)
    assert geometry.full_square((200, 256)) == Square(-28, 0, 256)
    assert geometry.full_square((64, 64)) == Square(0, 0, 64)


@pytest.mark.parametrize("square", [Square(10, 5, 20), Square(-7, -3, 40), Square(30, 25, 30), Square(-50, -50, 10), Square(-10, 0, 60)])
def test_crop_pad_is_numpy_padding_then_slicing(square):
    image = np.arange(40 * 36 * 2, dtype=np.int32).reshape(40, 36, 2)
    y0, x0, side = square
    pad = side + max(-y0, -x0, 0) + 64
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), constant_values=-1)
    expected = padded[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    np.testing.assert_array_equal(geometry.crop_pad(image, square, -1), expected)


def test_crop_pad_inside_the_image_is_a_view():
    image = np.zeros((32, 32), dtype=np.uint16)
    assert np.shares_memory(geometry.crop_pad(image, Square(4, 4, 16), 0), image)
