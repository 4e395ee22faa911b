"""Stage 3 of a transfer run: returns of each agent under each condition, with the time each part of a step takes.

Every condition plays the same episodes: episode ``i`` starts from ``reset(seed=s_i)`` with ``s_i`` from
:func:`evaluation_seeds`, so the initial states are identical across conditions and agents (common random
numbers: differences between conditions are paired). Actions are the agents' deterministic ones (the mean
action; pixel policies center-crop inside ``predict``).

Conditions, per agent: ``train look`` (the look it was trained in), ``target look`` (the new look,
unadapted) and ``target look + MODEL`` (the new look behind the translator MODEL, through
:class:`curl_agents.frame_translation.TranslateFrames`). Timing per agent step: ``step_ms`` (the env's
``step`` as the agent sees it: simulation with action repeat, rendering and, when translated, the
translation), ``sim_render_ms`` (simulation and rendering alone), ``translate_ms`` (per frame) and
``policy_ms`` (``predict``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from curl_agents.frame_translation import Latency, TranslateFrames


def evaluation_seeds(seed: int, episodes: int) -> list[int]:
    """Reset seeds of the evaluation episodes: ``SeedSequence([seed, 2**20]).generate_state(episodes)`` (31 bits)."""
    words = np.random.SeedSequence([int(seed), 2**20]).generate_state(episodes)
    return [int(w & 0x7FFFFFFF) for w in words]


@dataclass
class ConditionResult:
    """One agent's episodes under one condition."""

    condition: str
    agent: str
    returns: list[float]
    seeds: list[int]
    agent_steps: int
    step_ms: float
    sim_render_ms: float
    policy_ms: float
    translate_ms: float | None = None
    key: dict[str, Any] = field(default_factory=dict)  # what the result depends on (the stage's cache key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def play(
    model: Any, env: gym.Env, seeds: Sequence[int], desc: str = "", progress: bool = False
) -> tuple[list[float], Latency, Latency]:
    """Deterministic episodes from ``reset(seed=s)`` for each seed: (returns, step latency, policy latency)."""
    returns: list[float] = []
    step, policy = Latency(), Latency()
    for seed in tqdm(seeds, desc=desc, unit="episode", disable=not progress, dynamic_ncols=True, leave=False):
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            start = time.perf_counter()
            action, _ = model.predict(obs, deterministic=True)
            policy.add(1, time.perf_counter() - start)
            start = time.perf_counter()
            obs, reward, terminated, truncated, _ = env.step(action)
            step.add(1, time.perf_counter() - start)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns, step, policy


def evaluate_condition(
    condition: str,
    agent: str,
    model: Any,
    env: gym.Env,
    seeds: Sequence[int],
    key: dict[str, Any],
    progress: bool = False,
) -> ConditionResult:
    """Play ``seeds`` in ``env`` (a :class:`TranslateFrames` for translated conditions) and time the parts."""
    returns, step, policy = play(model, env, seeds, desc=f"{condition} / {agent}", progress=progress)
    translate_ms = None
    sim_render_ms = step.ms_per_item
    if isinstance(env, TranslateFrames):
        sim_render_ms = env.step_latency.ms_per_item
        latency = getattr(env.translator, "latency", None)
        translate_ms = latency.ms_per_item if latency is not None else None
    return ConditionResult(
        condition=condition,
        agent=agent,
        returns=returns,
        seeds=list(seeds),
        agent_steps=step.count,
        step_ms=step.ms_per_item,
        sim_render_ms=sim_render_ms,
        policy_ms=policy.ms_per_item,
        translate_ms=translate_ms,
        key=key,
    )
