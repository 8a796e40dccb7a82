"""Running a conversion: the stages called over a whole source, safely, within the disk.

``plan`` decides what a run will do before it starts (the settings resolved, the fastai preset's
breakpoints sampled, the inputs sorted, the disk fitted; the dry run); ``pipeline`` drives a run
(``convert``, ``scan``): it lists the inputs and calls the stages; ``worker`` reads, renders and
stores one task's inputs, ``parallel`` runs tasks on processes or Dask; ``resume`` finds what an
earlier run left, ``manifest`` records every input, ``budget``, ``fit`` and ``ladder`` keep the
output within the disk and pick the JPEG quality.
"""
