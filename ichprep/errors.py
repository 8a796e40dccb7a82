"""The errors a user can cause, told apart from bugs.

Every mistake in how ichprep was asked to run (a wrong path, a bad option, a labels file that does
not parse, a model that is not an ichprep model, an output folder made with other settings) raises
``IchprepError``. The command line catches it in one place and prints one line,
``ichprep: error: <message>``, with exit code 2; anything else is a bug and keeps its traceback.

A bad input *file* is neither: it becomes a failed manifest row with a one-line reason and the run
goes on (``ichprep.convert.read.dicom.DicomError``). A full disk, or a streamed zip that breaks off,
stops a run resumably (``DiskFullError``, ``StreamCutError``, exit code 1).
"""

from __future__ import annotations


class IchprepError(Exception):
    """A mistake the user can fix; ``str(err)`` says what is wrong and what to do, on one line."""


class SourceError(IchprepError):
    """An input source as a whole cannot be used (missing, not a folder, zip or list, nothing in it)."""


class LabelsError(IchprepError):
    """A labels file that cannot be trusted; the message names the offending line or image."""


class BudgetError(IchprepError):
    """The estimated output would not fit the disk or ``--max-disk``; nothing was converted.

    ``estimate`` (a ``budget.Estimate``) lets a caller that converts on a user's behalf
    (``predict`` on raw DICOMs) say what would not fit in its own words.
    """

    def __init__(self, message: str, estimate: object = None) -> None:
        super().__init__(message)
        self.estimate = estimate


class DiskFullError(Exception):
    """The output file system filled (or ``--max-disk`` was spent) mid-run: stop, keep what is done, resume later."""


class StreamCutError(Exception):
    """A zip read as a stream broke off mid-run (a pipe closed, a connection lost for good): keep what is done, resume later."""
