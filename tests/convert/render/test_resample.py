"""The resampling module's OpenCV side: the area resize every resize of the renderer ends in when the kernel does not do it."""

from __future__ import annotations

import cv2
import numpy as np

from ichprep.convert.render import resample


def test_resize_area_is_opencvs_area_resize_and_the_identity_at_size():
    image = np.random.default_rng(0).random((60, 60, 3))
    np.testing.assert_array_equal(resample.resize_area(image, 24), cv2.resize(image, (24, 24), interpolation=cv2.INTER_AREA))
    assert resample.resize_area(image, 60) is image
