"""Rendering: a slice's stored pixels to the windowed, cropped, resized uint8 image.

The channels are ``ichprep.windows``' (a window, or fastai's histogram-equalised range: the one
shape windows have once ``Settings`` parsed ``--windows``, with its pixel math; ``convert.run.plan``
samples that preset's breakpoints), ``geometry`` finds the head and its square, ``resample``
downscales the square (the compiled kernel ``_area.c`` or OpenCV) and ``renderer`` puts them
together with one lookup table per HU mapping. Nothing here reads a file: a slice arrives decoded.
"""
