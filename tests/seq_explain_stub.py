"""A sequence job opened for interpretation without training: the small synthetic folder's
``seq_cnn_base`` data (20 kb chunks, chromosomes 1-4) and a hand-made net, for tests where the
model's quality is irrelevant and the answer must be exact (knockout, ISM, variants).

``MotifNet(log_odds, thresholds)``: the predicted count of a bin is 1 + the motif activity
within ``REACH_BINS`` bins of it, the sum over hits on either strand of (log-odds score -
threshold)+ of each PWM: a known, local function of the motifs alone. ``stub_job(folder, cache_dir, net)``: an ``ExplainJob``
on that data with ``net`` (no record, no checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REACH_BINS = 5  # a bin's count sees the motif hits within 5 bins (500 bp) of it
SMALL = ["model.inputs.chunk_bp=20000", "model.batch_size=2", "model.eval_batch_size=16",
         "data.exclude_chroms=['^chr([5-9]|[1-2][0-9]|X|Y)$']", "data.max_dropped_fraction=1.0"]


class MotifNet(nn.Module):
    """x (B, 4, L) one-hot -> (B, n_tracks, L // 100) counts, 1 + the motif activity near each bin."""

    def __init__(self, *, log_odds: dict[str, np.ndarray], thresholds: dict[str, float], n_tracks: int = 2, rc_average: bool = False):
        super().__init__()
        width = max(len(m) for m in log_odds.values())
        w = np.zeros((2 * len(log_odds), 4, width), np.float32)
        for i, lo in enumerate(log_odds.values()):
            w[2 * i, :, : len(lo)] = lo.T
            w[2 * i + 1, :, : len(lo)] = lo[::-1, ::-1].T
        self.register_buffer("weight", torch.from_numpy(w))
        self.register_buffer("threshold", torch.tensor(np.repeat([thresholds[n] for n in log_odds], 2), dtype=torch.float32))
        self.n_tracks, self.rc_average = n_tracks, rc_average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 4, L); returns (B, n_tracks, L // 100)."""
        score = F.conv1d(F.pad(x, (0, self.weight.shape[-1] - 1)), self.weight)  # (B, 2M, L): a hit at its first base
        activity = torch.relu(score - self.threshold[None, :, None]).sum(dim=1)  # (B, L)
        per_bin = activity.reshape(x.shape[0], 1, -1, 100).sum(-1)  # (B, 1, L // 100)
        near = F.avg_pool1d(per_bin, kernel_size=2 * REACH_BINS + 1, stride=1, padding=REACH_BINS, count_include_pad=True)
        return (1 + near * (2 * REACH_BINS + 1)).expand(x.shape[0], self.n_tracks, -1)


def stub_job(folder: Path, cache_dir: Path, net: nn.Module, *, extra=()):
    from hydra.utils import instantiate

    from epx.config import compose
    from epx.explain.adapters import adapter_for
    from epx.explain.job import ExplainJob

    cfg = compose(["dataset=folder", f"dataset.root={folder}", f"paths.cache_dir={cache_dir}", "logger=none", "model=seq_cnn_base",
                   "mark=H3K4me3+H3K27ac", *SMALL, *extra])
    objective = instantiate(cfg.model.objective)
    dm = instantiate(cfg.data, inputs=instantiate(cfg.model.inputs), target_column=objective.target_column)
    dm.prepare_data()
    dm.setup()
    net = net.eval()
    adapter = adapter_for(net, dm, objective, "seq_cnn_base")
    return ExplainJob(Path(cache_dir), None, cfg, {"model": "seq_cnn_base"}, objective, net, dm, adapter, torch.device("cpu"))
