"""Where a run's starting weights come from: the Hugging Face hub's cache, a local file, or nowhere.

``resolve`` runs before any work and either returns a local weights file or refuses in one line:
an arch timm has no weights for, weights neither cached nor reachable, a ``--weights`` file that
does not fit the arch. Hub weights are fetched by ``huggingface_hub`` into its standard cache
(``HF_HOME``) with its own progress bar, reused afterwards, and found offline with
``HF_HUB_OFFLINE=1``. The network is then built by timm's own loader from that file
(``pretrained_cfg_overlay=dict(file=...)``), which drops the ImageNet head, tiles the RGB stem to
the input channels and applies the model's checkpoint filter, exactly as ``pretrained=True`` does.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ichprep.errors import IchprepError
from ichprep.models.backbones import create, split_arch

if TYPE_CHECKING:
    from torch import nn

RANDOM, HUB, FILE = "random", "hub", "file"


@dataclass(frozen=True)
class Start:
    """A run's starting weights: ``kind`` (random, hub or file), the hub id or file they came from, and the local file."""

    arch: str
    kind: str
    source: str = ""
    file: str = ""

    def describe(self) -> str:
        """How the run's first line and model.pt name the weights."""
        if self.kind == HUB:
            cache = "torch hub cache" if self.source.startswith(("http://", "https://")) else "Hugging Face cache"
            return f"ImageNet weights {self.source} ({cache})"
        if self.kind == FILE:
            return f"weights from {self.source}"
        return "random weights"

    def record(self) -> dict:
        """What model.pt keeps of it (the local file is this machine's business, not the model's)."""
        return {k: v for k, v in asdict(self).items() if k != "file"}


def resolve(arch: str, weights: Path | None, pretrained: bool) -> Start:
    """The starting weights of ``arch``, checked and made local before any work; refuses in one line."""
    if weights is not None:
        check_fits(arch, weights)
        return Start(arch, FILE, str(weights), str(weights))
    if not pretrained:
        return Start(arch, RANDOM)
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise IchprepError(f"--arch {arch}: timm has no pretrained weights for it; pass --weights FILE or --no-pretrained")
    full = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture
    if cfg.hf_hub_id:
        return Start(full, HUB, cfg.hf_hub_id, hub_file(cfg.hf_hub_id, cfg.hf_hub_filename, full))
    return Start(full, HUB, cfg.url, url_file(cfg.url, full))


HUB_FILES: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
"""The weight files timm looks for in a hub repository, in its order of preference."""


def _unreachable(arch: str, why: str) -> IchprepError:
    return IchprepError(f"--arch {arch}: pretrained weights are neither in the Hugging Face cache nor reachable ({why}); "
                        "pass --weights FILE (a state dict in timm's names) or --no-pretrained")


def hub_file(hub_id: str, filename: str | None, arch: str) -> str:
    """The cached weight file of ``hub_id``, downloaded (with huggingface_hub's progress bar) when not cached yet."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    from timm.models._hub import hf_split

    repo, revision = hf_split(hub_id)
    names = (filename,) if filename else HUB_FILES
    for name in names:
        cached = try_to_load_from_cache(repo, name, revision=revision)
        if isinstance(cached, str):
            return cached
    if constants.HF_HUB_OFFLINE:
        raise _unreachable(arch, "HF_HUB_OFFLINE is set")
    from huggingface_hub.errors import RemoteEntryNotFoundError
    from huggingface_hub.utils import logging as hub_logging

    verbosity = hub_logging.get_verbosity()
    hub_logging.set_verbosity_error()  # its retries are warnings; the refusal below says it in one line
    try:
        for name in names:
            try:
                return hf_hub_download(repo, name, revision=revision)
            except RemoteEntryNotFoundError:
                continue
            except Exception as err:  # the hub client reports a refused or broken connection in many types
                raise _unreachable(arch, f"{repo}: {type(err).__name__}") from None
    finally:
        hub_logging.set_verbosity(verbosity)
    raise _unreachable(arch, f"{repo} holds none of {', '.join(names)}")


def url_file(url: str, arch: str) -> str:
    """The torch hub cache's copy of weights that timm keeps at a plain URL, downloaded when missing."""
    from timm.models._hub import download_cached_file

    try:
        return download_cached_file(url, progress=True)
    except Exception as err:  # urllib reports a refused or broken connection in many types
        raise _unreachable(arch, f"{url}: {type(err).__name__}") from None


def build(start: Start, in_chans: int) -> nn.Module:
    """The network of ``start.arch`` with six outputs and ``in_chans`` inputs, loaded from its starting weights."""
    if start.kind == RANDOM:
        return create(start.arch, in_chans)
    return create(start.arch, in_chans, pretrained=True, pretrained_cfg_overlay=dict(file=start.file))


def check_fits(arch: str, weights: Path) -> None:
    """Refuse a ``--weights`` file that timm's loader cannot load into ``arch``, naming the tensors that do not fit.

    timm loads leniently once the head is replaced (six labels), so the check loads the file the
    strict way, into the arch with its pretrained head, and forgives only the head's tensors: a file
    with another head, or none, still fits.
    """
    import timm

    name, _ = split_arch(arch)
    cfg = timm.models.get_pretrained_cfg(arch)
    heads = (cfg.classifier,) if cfg is not None and isinstance(cfg.classifier, str) else tuple(cfg.classifier or ()) if cfg else ()
    classes = cfg.num_classes if cfg is not None and cfg.num_classes else 1000
    try:
        with warnings.catch_warnings():  # a foreign file's pickle-protocol warning is noise: the refusal says it all
            warnings.simplefilter("ignore")
            timm.create_model(arch, num_classes=classes, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)))
    except Exception as err:  # torch's load_state_dict refusal, or not a state dict at all (a foreign pickle, a damaged file)
        rows = _mismatches(str(err)) if isinstance(err, RuntimeError) else []
        if not rows:
            raise IchprepError(f"--weights {weights} is not a state dict timm can read ({type(err).__name__})") from None
        wrong = [row for row in rows if not row[1].startswith(tuple(f"{h}." for h in heads))]
        if wrong:
            raise IchprepError(f"--weights {weights} does not fit {name}: {_summary(wrong)}") from None


def _mismatches(message: str) -> list[tuple[str, str, str]]:
    """torch's load_state_dict error as (kind, tensor, detail) rows: missing, unexpected, or of another shape."""
    rows = []
    for kind, pattern in (("missing", r"Missing key\(s\) in state_dict: (.*?)\.\s*$"),
                          ("unexpected", r"Unexpected key\(s\) in state_dict: (.*?)\.\s*$")):
        found = re.search(pattern, message, re.M)
        if found:
            rows += [(kind, key, "") for key in re.findall(r'"([^"]+)"', found.group(1))]
    shapes = re.findall(r"size mismatch for ([^:]+): copying a param with shape torch.Size\((\[[^\]]*\])\) from checkpoint, "
                        r"the shape in current model is torch.Size\((\[[^\]]*\])\)", message)
    rows += [("of another shape", key, f"{theirs} vs {ours}") for key, theirs, ours in shapes]
    return rows


def _summary(rows: list[tuple[str, str, str]]) -> str:
    """The mismatches on one line: how many of each kind and the first few tensors by name."""
    parts = []
    for kind in ("missing", "unexpected", "of another shape"):
        keys = [f"{key} {detail}".strip() for k, key, detail in rows if k == kind]
        if keys:
            parts.append(f"{len(keys)} {kind} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
    return "; ".join(parts)
