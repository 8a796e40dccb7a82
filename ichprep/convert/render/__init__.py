"""Rendering: a slice's stored pixels to the windowed, cropped, resized uint8 image.

``windows`` holds what a channel is (a window, or fastai's histogram-equalised range) and its
pixel math, ``geometry`` finds the head and its square, ``resample`` downscales the square (the
compiled kernel ``_area.c`` or OpenCV) and ``renderer`` puts them together with one lookup table
per HU mapping.
"""
