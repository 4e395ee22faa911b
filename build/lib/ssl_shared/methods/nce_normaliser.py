"""The fixed partition-function estimate of memory-bank NCE (Wu et al. 2018, NPID, sec. 3.2; reused by
PIRL, Misra & van der Maaten 2020).

The non-parametric model ``P(i | v) = exp(s_i / tau) / Z`` needs ``Z = sum_j exp(s_j / tau)`` over the
whole data set. NPID estimates it once by Monte Carlo on the first batch's noise samples and keeps it:

    Z ~ n * mean_{noise j} exp(s_j / tau),     log P(i | v) = s_i / tau - log Z

In a data-parallel run the mean runs over the noise scores of all processes (one ``all_gather`` of each
process's ``(logsumexp, count)``), so every process fixes the same ``Z`` as one process would on the
concatenated batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ssl_shared.losses import distributed


class FixedNormaliser(nn.Module):
    """Holds ``log Z`` (a buffer, NaN until the first call) for a data set of ``num_samples`` items."""

    def __init__(self, num_samples: int) -> None:
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples = num_samples
        self.register_buffer("log_z", torch.tensor(float("nan")))

    @torch.no_grad()
    def fix(self, noise_logits: Tensor) -> None:
        """Set ``log Z = log n + log mean exp(noise_logits)`` (mean over all processes) if it is not set yet.

        A collective in a data-parallel run: every process calls it at the same step.
        """
        if bool(torch.isnan(self.log_z)):
            flat = noise_logits.detach().flatten().float()
            count = torch.tensor(float(flat.numel()), dtype=flat.dtype, device=flat.device)
            stats = distributed.gather(torch.stack([torch.logsumexp(flat, 0), count])[None])  # (processes, 2)
            log_mean_exp = torch.logsumexp(stats[:, 0], 0) - torch.log(stats[:, 1].sum())
            self.log_z.fill_(float(log_mean_exp) + math.log(self.num_samples))

    def forward(self, logits: Tensor) -> Tensor:
        """``log P = logits - log Z`` (call :meth:`fix` first)."""
        return logits - self.log_z
