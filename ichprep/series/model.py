"""The sequence model of the second stage: a bidirectional GRU or LSTM over a series' slices.

Each slice's input is its CNN features (layer-normalised) and its six logits; an optional 1-D
convolution along the series (the 1st place's) mixes neighbours before the RNN; the output adds a
correction to the CNN's own logits, and the correction's layer starts at zero, so training starts
from exactly the CNN's prediction and only has to learn what the neighbours add. Padding never
reaches a real slice: padded steps are zeroed before the convolution (as a series' end is
zero-padded on its own) and the RNN runs on packed sequences, so a series' output is the same
whatever it was batched or padded with.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ichprep import LABELS

CELLS: tuple[str, ...] = ("gru", "lstm")


class SeriesModel(nn.Module):
    """(B, T, features + 6) inputs and series lengths (B,) to (B, T, 6) logits."""

    def __init__(self, features: int, hidden: int = 64, layers: int = 2, cell: str = "gru", conv: int = 0,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.features = features
        self.norm = nn.LayerNorm(features) if features else None
        self.proj = nn.Sequential(nn.Linear(features + len(LABELS), hidden), nn.ReLU())
        self.conv = nn.Conv1d(hidden, hidden, conv, padding=conv // 2) if conv else None
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(hidden, hidden, layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, len(LABELS))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits = x[..., -len(LABELS):]
        if self.norm is not None:
            x = torch.cat([self.norm(x[..., : self.features]), logits], dim=-1)
        mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]).unsqueeze(-1)
        h = self.proj(x) * mask
        if self.conv is not None:
            h = (h + torch.relu(self.conv(h.transpose(1, 2)).transpose(1, 2))) * mask
        packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return logits + self.head(self.drop(out))


def padded(items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Series (T_i, D) as one zero-padded batch (B, max T, D) and their lengths."""
    lengths = torch.tensor([len(t) for t in items], dtype=torch.long)
    return nn.utils.rnn.pad_sequence(items, batch_first=True), lengths


@torch.inference_mode()
def series_probs(model: torch.nn.Module, inputs: list[torch.Tensor], device: torch.device, batch: int = 64) -> list[np.ndarray]:
    """Sigmoid probabilities (T_i, 6) of each series through the sequence model, ``batch`` series per forward."""
    model.eval()
    out = []
    for k in range(0, len(inputs), batch):
        x, lengths = padded([t.float() for t in inputs[k : k + batch]])
        p = torch.sigmoid(model(x.to(device), lengths)).cpu().numpy().astype(np.float64)
        out += [p[i, : int(n)] for i, n in enumerate(lengths)]
    return out
