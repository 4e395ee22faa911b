"""Read a run's evaluation log and take its score; a bootstrap CI of a mean for the single-group summaries.

A run of ``python -m curl_agents.train`` writes ``eval.csv`` with at least ``env_step`` and ``mean_return``:
one row per evaluation, at env step 0, every ``eval_every_env_steps`` and once at the end of the run. A
run's score is its own final evaluation, taken when it reached its budget (:func:`final_score`); a log with
two rows for one env step (a run evaluated twice at its end, e.g. resumed after it had finished) is an
error, never resolved by taking either row. Aggregate statistics across tasks and seeds (IQM, optimality
gap, probability of improvement, performance profiles) come from ``rliable`` in
:mod:`experiments.grid.rl_report`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssl_shared.run_dir import read_csv


def read_eval_csv(path: str | Path) -> list[tuple[int, float]]:
    """``(env_step, mean_return)`` rows of one ``eval.csv`` in file order.

    Raises ``ValueError`` when a column is missing, when two rows share an env step, or when the steps
    do not increase.
    """
    rows = read_csv(path, unique_key="env_step")
    if rows and not {"env_step", "mean_return"} <= set(rows[0]):
        raise ValueError(f"{path}: missing columns {sorted({'env_step', 'mean_return'} - set(rows[0]))}")
    out = [(int(float(r["env_step"])), float(r["mean_return"])) for r in rows]
    for (a, _), (b, _) in zip(out, out[1:]):
        if b <= a:
            raise ValueError(f"{path}: env_step goes from {a} to {b}; evaluation rows must increase")
    return out


def final_score(rows: list[tuple[int, float]], budget: int, source: str | Path = "eval.csv") -> tuple[int, float]:
    """The run's own last evaluation, which must lie at or past its ``budget`` of env steps.

    The final evaluation of a finished run sits at the first multiple of the action repeat at or after
    the budget; a last row before the budget means the run stopped early, and raises ``ValueError``.
    """
    if not rows:
        raise ValueError(f"{source}: no evaluation rows")
    step, value = rows[-1]
    if step < budget:
        raise ValueError(f"{source}: last evaluation at env step {step:,}, before the budget of {budget:,}")
    return step, value


def bootstrap_mean_ci(
    values: np.ndarray, reps: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap CI of the mean (resampling the values with replacement)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("cannot bootstrap an empty set of values")
    rng = np.random.default_rng(seed)
    resamples = rng.choice(values, size=(reps, values.size), replace=True).mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(values.mean()), float(np.quantile(resamples, alpha)), float(np.quantile(resamples, 1 - alpha))
