"""The metadata table of convert's manifest, the labels joined, cleaned as Jeremy Howard's kernel did.

``clean_meta`` does all of `ichprep clean-meta`; ``build_table``, ``clean`` and ``read_labels``
are its steps for a notebook.
"""

from ichprep.labels import read_labels
from ichprep.meta.cleaning import CleanOptions, clean, format_report, patient_folds
from ichprep.meta.table import (
           build_table,
           clean_meta,
           load_source,
           series_position,
           write_outputs,
)

__all__ = ["CleanOptions", "build_table", "clean", "clean_meta", "format_report",
           "load_source", "patient_folds", "read_labels", "series_position", "write_outputs"]
