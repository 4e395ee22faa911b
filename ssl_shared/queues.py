"""Stores of past embeddings used as negatives: a FIFO key queue (MoCo) and a per-sample memory bank
(NPID / PIRL)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KeyQueue(nn.Module):
    """FIFO queue of ``size`` key embeddings of width ``dim`` (He et al. 2020, MoCo).

    ``enqueue(keys)`` writes the newest keys over the oldest ones; ``keys`` returns the queue as a
    ``(size, dim)`` tensor. The queue starts with random unit vectors, as in MoCo. It is a buffer,
    so it moves with ``.to(device)`` and is saved in ``state_dict``.
    """

    queue: torch.Tensor
    ptr: torch.Tensor

    def __init__(self, dim: int, size: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if dim <= 0 or size <= 0:
            raise ValueError(f"dim and size must be positive, got dim={dim}, size={size}")
        init = F.normalize(torch.randn(size, dim, generator=generator), dim=1)
        self.register_buffer("queue", init)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def keys(self) -> torch.Tensor:
        return self.queue

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        if keys.ndim != 2 or keys.shape[1] != self.queue.shape[1]:
            raise ValueError(f"keys must have shape (N, {self.queue.shape[1]}), got {tuple(keys.shape)}")
        size = self.queue.shape[0]
        keys = keys.detach().to(self.queue.dtype)[-size:]
        positions = (self.ptr + torch.arange(keys.shape[0], device=self.queue.device)) % size
        self.queue[positions] = keys
        self.ptr.copy_((self.ptr + keys.shape[0]) % size)


class MemoryBank(nn.Module):
    """One embedding per dataset sample, updated by EMA (Wu et al. 2018 NPID; Misra & van der Maaten
    2020 PIRL):

        m_i <- normalize(momentum * m_i + (1 - momentum) * f_i)

    ``get(idx)`` reads rows, ``update(idx, feats)`` applies the rule above, ``sample(n)`` draws ``n``
    random rows (negatives).

    ``sample`` draws from a generator the bank owns (unless one is passed), seeded at construction from
    ``generator`` or the global torch RNG. Processes that build the bank after the same seeding therefore
    draw the same rows at every step: a data-parallel run shares one set of negatives per global batch,
    as one process does. Its state is part of ``state_dict`` (``_extra_state``), so a resumed run draws
    what an uninterrupted one would.
    """

    bank: torch.Tensor

    def __init__(
        self, num_samples: int, dim: int, momentum: float = 0.5, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if num_samples <= 0 or dim <= 0:
            raise ValueError(f"num_samples and dim must be positive, got {num_samples}, {dim}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        init = F.normalize(torch.randn(num_samples, dim, generator=generator), dim=1)
        self.register_buffer("bank", init)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        self.noise_generator = torch.Generator().manual_seed(seed)

    def _check_idx(self, idx: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(idx, device=self.bank.device).long()
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.bank.shape[0]):
            raise ValueError(
                f"indices must be in [0, {self.bank.shape[0] - 1}], got range [{int(idx.min())}, {int(idx.max())}]"
            )
        return idx

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        return self.bank[self._check_idx(idx)]

    @torch.no_grad()
    def update(self, idx: torch.Tensor, feats: torch.Tensor) -> None:
        idx = self._check_idx(idx)
        if feats.shape != (idx.shape[0], self.bank.shape[1]):
            raise ValueError(f"feats must have shape ({idx.shape[0]}, {self.bank.shape[1]}), got {tuple(feats.shape)}")
        mixed = self.momentum * self.bank[idx] + (1 - self.momentum) * feats.detach().to(self.bank.dtype)
        self.bank[idx] = F.normalize(mixed, dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` rows drawn uniformly with replacement, from ``generator`` or else the bank's own."""
        generator = self.noise_generator if generator is None else generator
        idx = torch.randint(0, self.bank.shape[0], (n,), generator=generator, device=generator.device)
        return self.bank[idx.to(self.bank.device)]

    def get_extra_state(self) -> dict:
        return {"noise_generator": self.noise_generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.noise_generator.set_state(state["noise_generator"])
