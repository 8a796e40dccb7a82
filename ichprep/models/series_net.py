"""The sequence model of the second stage: a bidirectional GRU or LSTM over a series' slices.

Each slice's input is its CNN features (layer-normalised), optionally their differences to the
previous and the next slice (the 2nd place's "deltas") and the distances to those slices (the 1st
place's slice spacing), and its six logits. Optional 1-D convolutions along the series, dilated
(the 1st place's), mix neighbours before the RNN. The output adds a correction to the CNN's own
logits, and the correction's layer starts at zero, so training starts from exactly the CNN's
prediction and only has to learn what the neighbours add. Padding never reaches a real slice:
padded steps are zeroed before every convolution (as a series' end is zero-padded on its own),
the neighbours of a series' edge slice are itself, and the RNN runs on packed sequences, so a
series' output is the same whatever it was batched or padded with.

A slice's row in a series tensor is ``[features | position | logits]`` (``SeriesShape.width``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ichprep import LABELS
from ichprep.models.inputs import SPACING_MM

MAX_GAP: float = 4.0
"""Gaps beyond 4 units (20 mm: a missing stretch of slices) are fed as 4."""


@dataclass(frozen=True)
class SeriesShape:
    """What a sequence model is made of; ``features`` is the CNN feature width it reads (0: the logits alone)."""

    features: int
    hidden: int = 64
    layers: int = 2
    cell: str = "gru"
    conv: int = 0
    dilations: tuple[int, ...] = (1,)
    dropout: float = 0.2
    deltas: bool = False
    spacing: bool = False

    @property
    def width(self) -> int:
        """Columns of a slice's row: the features, its position along the series, the six logits."""
        return self.features + 1 + len(LABELS)

    def plain(self) -> dict:
        """The shape as plain values, for a model file."""
        return {**asdict(self), "dilations": list(self.dilations)}

    @classmethod
    def from_plain(cls, values: dict) -> SeriesShape:
        return cls(**{**values, "dilations": tuple(values["dilations"])})


def _neighbours(h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each step's previous and next step (B, T, D) within its series; an edge step is its own neighbour."""
    prev = torch.cat([h[:, :1], h[:, :-1]], dim=1)
    nxt = torch.cat([h[:, 1:], h[:, -1:]], dim=1)
    has_next = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    return prev, torch.where(has_next, nxt, h)


class SeriesModel(nn.Module):
    """(B, T, ``shape.width``) inputs and series lengths (B,) to (B, T, 6) logits."""

    def __init__(self, shape: SeriesShape) -> None:
        super().__init__()
        self.shape = shape
        f = shape.features
        self.norm = nn.LayerNorm(f) if f else None
        width = f * (3 if shape.deltas and f else 1) + (2 if shape.spacing else 0) + len(LABELS)
        self.proj = nn.Sequential(nn.Linear(width, shape.hidden), nn.ReLU())
        k = shape.conv
        self.convs = nn.ModuleList(nn.Conv1d(shape.hidden, shape.hidden, k, padding=d * (k // 2), dilation=d)
                                   for d in (shape.dilations if k else ()))
        rnn = nn.GRU if shape.cell == "gru" else nn.LSTM
        self.rnn = rnn(shape.hidden, shape.hidden, shape.layers, batch_first=True, bidirectional=True,
                       dropout=shape.dropout if shape.layers > 1 else 0.0)
        self.drop = nn.Dropout(shape.dropout)
        self.head = nn.Linear(2 * shape.hidden, len(LABELS))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _inputs(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """A step's input to the projection: features (and deltas), spacing, logits."""
        f = self.shape.features
        parts = []
        if f:
            feats = self.norm(x[..., :f])
            parts.append(feats)
            if self.shape.deltas:
                prev, nxt = _neighbours(feats, mask)
                parts += [feats - prev, nxt - feats]
        if self.shape.spacing:
            position = x[..., f : f + 1]
            prev, nxt = _neighbours(position, mask)
            parts += [((position - prev).abs() / SPACING_MM).clamp(max=MAX_GAP),
                      ((nxt - position).abs() / SPACING_MM).clamp(max=MAX_GAP)]
        parts.append(x[..., -len(LABELS):])
        return torch.cat(parts, dim=-1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits = x[..., -len(LABELS):]
        mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]).unsqueeze(-1)
        h = self.proj(self._inputs(x, mask)) * mask
        for conv in self.convs:
            h = (h + torch.relu(conv(h.transpose(1, 2)).transpose(1, 2))) * mask
        packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return logits + self.head(self.drop(out))


def padded(items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Series (T_i, D) as one zero-padded batch (B, max T, D) and their lengths."""
    lengths = torch.tensor([len(t) for t in items], dtype=torch.long)
    return nn.utils.rnn.pad_sequence(items, batch_first=True), lengths


@torch.inference_mode()
def series_probs(model: nn.Module, inputs: list[torch.Tensor], device: torch.device, batch: int = 64,
                 reverse: bool = False) -> list[np.ndarray]:
    """Sigmoid probabilities (T_i, 6) of each series through the sequence model, ``batch`` series per forward.

    ``reverse`` averages them with those of every series read backwards (the 1st place's TTA): a
    bidirectional model sees the same neighbours either way, but not with the same weights.
    """
    model.eval()
    orders = (False, True) if reverse else (False,)
    out = []
    for k in range(0, len(inputs), batch):
        chunk = [t.float() for t in inputs[k : k + batch]]
        total = None
        for backwards in orders:
            x, lengths = padded([t.flip(0) for t in chunk] if backwards else chunk)
            p = torch.sigmoid(model(x.to(device), lengths)).cpu().numpy().astype(np.float64)
            rows = [p[i, : int(n)][::-1] if backwards else p[i, : int(n)] for i, n in enumerate(lengths)]
            total = rows if total is None else [a + b for a, b in zip(total, rows)]
        out += [t / len(orders) for t in total]
    return out
