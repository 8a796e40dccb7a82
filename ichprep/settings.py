"""What a conversion makes: the one record of the settings that decide its pixels.

convert saves it beside its output (``OUT/ichprep.json``) and refuses to add images made
differently to that folder; ``ichprep train`` copies it into ``model.pt``; ``predict`` compares a
model's settings with the data's and renders raw DICOMs with them. Kept apart from the conversion
pipeline so that the training side learns how its images were made without importing it: it reads
only ``ichprep.windows`` (plain numpy), the type its channels have, and nothing of ``convert``.

Run options (processes, progress bars, a scheduler, a dry run) are not settings: two runs that
differ only in them make the same images.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ichprep import __version__, atomic
from ichprep.errors import IchprepError
from ichprep.layout import SETTINGS
from ichprep.windows import DEFAULT_WINDOWS, Channel, from_description, parse_windows, spec_of

FORMATS: tuple[str, ...] = ("png", "jpg", "hdf5")
CODECS: tuple[str, ...] = ("zstd", "blosc", "lzf", "gzip", "jpeg", "png")
"""HDF5 codecs: lossless chunk compressors, then encoded JPEG or PNG bytes."""
MIN_SIZE, MAX_SIZE = 8, 4096
DEFAULT_QUALITY = 95
"""JPEG quality when neither ``--quality`` nor a ``--max-disk`` budget sets one."""


@dataclass(frozen=True)
class Settings:
    """The settings of a conversion, as ``ichprep convert`` takes them and ``OUT/ichprep.json`` keeps them.

    ``windows`` (the ``--windows`` value) is parsed once, here, into ``channels``: the one shape
    windows have from then on (``ichprep.windows``), and ``windows`` becomes the name the settings
    file records (``fastai``, or the channels' names). Given ``channels`` (a saved record) win.
    The fastai preset's breakpoints are sampled by convert (``convert.run.plan``) before anything is
    rendered.
    """

    windows: str = DEFAULT_WINDOWS
    size: int = 256
    crop: bool = True
    format: str = "png"
    quality: int | None = None
    """JPEG quality; None in a request: the one ``--max-disk`` picks, else ``DEFAULT_QUALITY`` (always set once resolved)."""
    codec: str = "zstd"
    channels: tuple[Channel, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", {"jpeg": "jpg"}.get(self.format.lower(), self.format.lower()))
        object.__setattr__(self, "codec", self.codec.lower())
        if not self.channels:
            try:
                object.__setattr__(self, "channels", parse_windows(self.windows))
            except ValueError as err:
                raise IchprepError(f"--windows: {err}") from None
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "windows", spec_of(self.channels))

    def check(self) -> Settings:
        """Refuse values no conversion can be made with (``IchprepError`` naming the option)."""
        if self.format not in FORMATS:
            raise IchprepError(f"--format {self.format!r}: choose png, jpg or hdf5")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise IchprepError(f"--size {self.size}: choose {MIN_SIZE} to {MAX_SIZE} pixels")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise IchprepError(f"--quality {self.quality}: choose 1 to 100")
        if self.codec not in CODECS:
            raise IchprepError(f"--codec {self.codec!r}: choose one of {', '.join(CODECS)}")
        if self.format != "hdf5" and len(self.channels) not in (1, 3):
            raise IchprepError(f"{self.format} images hold 1 or 3 channels; {len(self.channels)} windows given")
        return self

    @property
    def lossy(self) -> bool:
        """Whether the stored images are JPEG-coded (files or shard bytes) rather than exact."""
        return self.format == "jpg" or (self.format == "hdf5" and self.codec == "jpeg")

    @property
    def encoding(self) -> str:
        """How stored pixels relate to rendered ones: ``lossless`` or the JPEG quality."""
        return f"JPEG quality {self.quality or DEFAULT_QUALITY}" if self.lossy else "lossless"

    def resolved(self, channels: Sequence[Channel]) -> Settings:
        """These settings with ``channels`` (the fastai preset's, its breakpoints sampled)."""
        return replace(self, channels=tuple(channels))

    def output_differences(self, other: Settings) -> list[str]:
        """What keeps images of ``other`` out of a folder made with these settings, as ``name old -> new``.

        Everything that changes a stored image or how it is stored: the channels, size, crop,
        format, the codec of shards and the quality of lossy ones.
        """
        keys = ["channels", "size", "crop", "format"] + (["codec"] if self.format == "hdf5" else [])
        return _differences(self, other, keys + (["quality"] if self.lossy or other.lossy else []))

    def pixel_differences(self, other: Settings) -> list[str]:
        """What makes images converted with ``other`` look different to a model trained on these.

        The channels (each window, the fastai breakpoints), size, crop and the encoding (lossless,
        or JPEG at some quality); PNG files and lossless shards hold the same pixels.
        """
        return _differences(self, other, ["channels", "size", "crop", "encoding"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready record (the codec only for shards, as it means nothing for image files)."""
        record = asdict(self)
        record["channels"] = [c.describe() for c in self.channels]
        record["quality"] = self.quality or DEFAULT_QUALITY
        if self.format != "hdf5":
            del record["codec"]
        return {**record, "ichprep_version": __version__}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Settings:
        """Settings from a saved record; keys it does not know (``ichprep_version``) are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        values["channels"] = from_description(values.get("channels", ()))
        return cls(**values)

    @classmethod
    def load(cls, folder: Path | str) -> Settings | None:
        """The settings ``folder`` was converted with, or None where it holds none."""
        path = Path(folder) / SETTINGS
        if not path.is_file():
            return None
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError, AttributeError, KeyError) as err:
            raise IchprepError(f"{path} is damaged ({err}); convert into a new folder") from None

    def save(self, folder: Path | str) -> None:
        """Write ``folder/ichprep.json`` atomically."""
        atomic.write_bytes(Path(folder) / SETTINGS, json.dumps(self.to_dict(), indent=2).encode())


def _differences(old: Settings, new: Settings, keys: list[str]) -> list[str]:
    """``name old -> new`` for each of ``keys`` whose value differs (the channels as ``--windows``, by their descriptions)."""
    changed = []
    for key in keys:
        before, after = getattr(old, key), getattr(new, key)
        if key == "channels":
            before, after, key = _describe(old), _describe(new), "--windows"
        if before != after:
            changed.append(f"{key} {before} -> {after}")
    return changed


def _describe(settings: Settings) -> str:
    """The channels as a short text: ``brain 40/80, 40/90, ...`` or ``freqhist (101 breakpoints from -1024)``."""
    return ", ".join(c.summary() for c in settings.channels)
