"""ichprep: RSNA intracranial-hemorrhage DICOMs to a compact, clean, training-ready dataset.

Importing the package is cheap and has no side effects: the heavy parts (torch, h5py, dask)
are imported by the modules and commands that need them.
"""

__version__ = "0.1.0"

SUBTYPES: tuple[str, ...] = (
    "epidural",
    "intraparenchymal",
    "intraventricular",
    "subarachnoid",
    "subdural",
    "any",
)
"""Subtypes in the order the competition CSV lists them for each image."""

LABELS: tuple[str, ...] = tuple(sorted(SUBTYPES))
"""Label columns in the order tables and models use: any first, then the subtypes alphabetically."""
