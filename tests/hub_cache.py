"""A Hugging Face cache filled by hand, as `huggingface_hub` lays it out, so timm's real loading runs offline.

Not a test module. The suite runs with ``HF_HOME`` pointing at such a cache and ``HF_HUB_OFFLINE=1``
(``conftest.pytest_configure``): `ichprep train` finds "ImageNet" weights for its default arch there,
weights the tests wrote themselves and therefore know.
"""

from __future__ import annotations

from pathlib import Path

REVISION = "0123456789abcdef0123456789abcdef01234567"
"""The commit a prefilled repository's refs/main names (any 40 hex digits do)."""


def repo_folder(hf_home: Path, hub_id: str) -> Path:
    """Where huggingface_hub caches the model repository ``hub_id`` (``org/name``) under ``HF_HOME``."""
    return hf_home / "hub" / f"models--{hub_id.replace('/', '--')}"


def prefill(hf_home: Path, arch: str, seed: int = 0) -> dict:
    """Write random, seeded ImageNet-shaped weights of timm's ``arch`` (NAME.TAG) into the cache; returns them."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    state = {k: v.contiguous() for k, v in timm.create_model(arch, pretrained=False).state_dict().items()}
    hub_id = timm.models.get_pretrained_cfg(arch).hf_hub_id
    folder = repo_folder(hf_home, hub_id)
    snapshot = folder / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    save_file(state, snapshot / "model.safetensors")
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(REVISION)
    return state
