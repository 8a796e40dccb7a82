"""Phantom head CTs in the competition's layout: the built-in data every stage runs on.

``generate`` writes a data set; ``plan`` describes every slice of one, ``truth_hu`` gives the
integer HU a slice's file decodes to and ``phantom`` the float HU with each structure's mask.
"""

from ichprep.synth.encode import write_slice
from ichprep.synth.generate import IMAGES_DIR, LABELS_CSV, QUIRKS_CSV, generate
from ichprep.synth.plan import QUIRKS, Encoding, SliceSpec, phantom, plan, truth_hu

__all__ = ["IMAGES_DIR", "LABELS_CSV", "QUIRKS", "QUIRKS_CSV", "Encoding", "SliceSpec", "generate", "phantom", "plan",
           "truth_hu", "write_slice"]
