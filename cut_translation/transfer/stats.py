"""Means with 95% bootstrap intervals over agents (seeds) and episodes, and the share of a reference return kept.

Returns of one condition form an array ``R`` of shape ``(agents, episodes)``. One bootstrap resample draws
``agents`` agents with replacement and, for each drawn agent, ``episodes`` of its episodes with replacement
(the two-level bootstrap for nested data: seeds, then episodes within a seed); its statistic is the mean of
the drawn returns. The interval is the 2.5 and 97.5 percentiles over ``n`` resamples (percentile bootstrap,
Efron & Tibshirani 1993, ch. 13). With one agent this is the ordinary bootstrap over episodes.

The share kept, ``mean(R) / mean(R_ref)``, is resampled PAIRED: numerator and denominator take the same
agents and episode indices, which is valid because every condition plays the same initial states (see
:mod:`cut_translation.transfer.evaluation`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def _check(returns: np.ndarray) -> np.ndarray:
    returns = np.asarray(returns, dtype=np.float64)
    if returns.ndim != 2 or min(returns.shape) < 1:
        raise ValueError(f"returns must be (agents >= 1, episodes >= 1), got shape {returns.shape}")
    return returns


def _resample_indices(shape: tuple[int, int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    agents, episodes = shape
    rng = np.random.default_rng(seed)
    agent_idx = rng.integers(0, agents, size=(n, agents))
    episode_idx = rng.integers(0, episodes, size=(n, agents, episodes))
    return agent_idx, episode_idx


def _resampled_means(returns: np.ndarray, agent_idx: np.ndarray, episode_idx: np.ndarray) -> np.ndarray:
    return returns[agent_idx[..., None], episode_idx].mean(axis=(1, 2))


def _interval(samples: np.ndarray, value: float) -> Estimate:
    tail = 100.0 * (1.0 - LEVEL) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return Estimate(float(value), float(low), float(high))


def bootstrap_mean(returns: np.ndarray, n: int = 10_000, seed: int = 0) -> Estimate:
    """Mean of ``returns`` (agents, episodes) with its two-level percentile interval."""
    returns = _check(returns)
    agent_idx, episode_idx = _resample_indices(returns.shape, n, seed)
    return _interval(_resampled_means(returns, agent_idx, episode_idx), float(returns.mean()))


def bootstrap_share(returns: np.ndarray, reference: np.ndarray, n: int = 10_000, seed: int = 0) -> Estimate:
    """``mean(returns) / mean(reference)`` with a paired two-level interval (same shape, same episodes)."""
    returns, reference = _check(returns), _check(reference)
    if returns.shape != reference.shape:
        raise ValueError(f"paired shares need equal shapes, got {returns.shape} and {reference.shape}")
    agent_idx, episode_idx = _resample_indices(returns.shape, n, seed)
    numerator = _resampled_means(returns, agent_idx, episode_idx)
    denominator = _resampled_means(reference, agent_idx, episode_idx)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = numerator / denominator
        value = float(returns.mean() / reference.mean()) if reference.mean() != 0 else float("nan")
    return (
        _interval(ratios[np.isfinite(ratios)], value) if np.isfinite(ratios).any() else Estimate(value, np.nan, np.nan)
    )
