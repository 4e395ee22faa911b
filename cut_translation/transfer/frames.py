"""Stage 1 of a transfer run: unpaired frames of the two looks, plus paired test frames, as a CUT dataset.

Layout (``cut_translation.data``'s ``ROOT/{phase}A|B``; A = the target look, B = the training look, so a
translator learns target -> training)::

    frames/trainA/000000.png ...  target look, frames of episodes in the target-look env
    frames/trainB/...             training look, frames of other episodes in the training-look env
    frames/testA/ frames/testB/   the same states rendered in both looks (same file names): sample grids, L1/PSNR
    frames/manifest.json          parameters and counts (written last)

A frame is the newest frame of each observation (the reset frame and one per agent step), at the render
size the agents see. Actions while collecting (``policy``): ``random``, a smoothed random policy
(``a_t = clip(0.7 a_{t-1} + 0.3 * 2 u_t, -1, 1)``, ``u_t ~ N(0, I)``, the dmc-restyle rollouts), or
``agent``, the agents' own sampled actions on what they see in that look (episode ``e`` uses agent
``e mod n``). No reward is used. The test states come from episodes in the training-look env with the same
policy, every 8th frame; the target-look image of a state is rendered by a second env of the same task whose physics is set
to that state. Episode seeds are drawn from independent streams per split (``numpy.random.SeedSequence``),
so the splits never share an episode.

The folder is written as ``frames.partial`` and renamed when complete; a rerun with the same parameters
skips the stage, other parameters are refused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image
from tqdm import tqdm

from cut_translation.transfer.agents import Agent, AgentSettings, make_agent_env
from ssl_shared.errors import UserError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
POLICIES = ("random", "agent")
ACTION_SMOOTHING = 0.7  # cut_translation.restyle.RolloutConfig.action_smoothing
TEST_STRIDE = 8  # test states: every 8th frame of an episode, so the pairs cover whole episodes


@dataclass(frozen=True)
class FrameSetSpec:
    """Everything that decides the frames (the cache key of the stage)."""

    settings: AgentSettings
    target_look: str
    frames_per_look: int
    test_pairs: int
    policy: str
    seed: int
    agent_models: tuple[str, ...]  # model files whose actions are used (policy "agent")
    test_stride: int = TEST_STRIDE  # keep every n-th frame of an episode as a test state


class SmoothedRandomPolicy:
    """``a_t = clip(s a_{t-1} + (1 - s) 2 u_t, -1, 1)``, ``u_t ~ N(0, I)``, ``a_0 = 0`` at each reset."""

    def __init__(self, shape: tuple[int, ...], rng: np.random.Generator, smoothing: float = ACTION_SMOOTHING) -> None:
        self.shape, self.rng, self.smoothing = shape, rng, smoothing
        self.action = np.zeros(shape)

    def reset(self) -> None:
        self.action = np.zeros(self.shape)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        noise = 2.0 * self.rng.standard_normal(self.shape)
        self.action = np.clip(self.smoothing * self.action + (1.0 - self.smoothing) * noise, -1.0, 1.0)
        return self.action.astype(np.float32)


class AgentPolicy:
    """An agent's sampled (stochastic) action for each observation."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def reset(self) -> None:
        pass

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.model.predict(obs, deterministic=False)[0]


def episode_seeds(seed: int, stream: int) -> Iterator[int]:
    """Reset seeds of one split: an endless stream from ``SeedSequence(seed).spawn(3)[stream]``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[stream])
    while True:
        yield int(rng.integers(2**31 - 1))


def render_state(env: gym.Env, state: np.ndarray) -> np.ndarray:
    """``env``'s camera image (3, H, W) uint8 of the physics state ``state`` (its own state is replaced)."""
    physics = env.unwrapped.physics
    with physics.reset_context():
        physics.set_state(state)
    return np.ascontiguousarray(env.unwrapped.render().transpose(2, 0, 1))


def rollout(
    env: gym.Env,
    policies: Sequence[Callable[[np.ndarray], np.ndarray]],
    count: int,
    seeds: Iterator[int],
    stride: int = 1,
) -> Iterator[np.ndarray]:
    """Newest frames of episodes (reset frame, then one per step; every ``stride``-th of them) until ``count``;
    episode e acts with policy e % n."""
    produced, episode = 0, 0
    while produced < count:
        policy = policies[episode % len(policies)]
        getattr(policy, "reset", lambda: None)()
        obs, _ = env.reset(seed=next(seeds))
        episode += 1
        done, index = False, 0
        while True:
            if index % stride == 0:
                yield obs[-3:]
                produced += 1
            index += 1
            if done or produced >= count:
                break
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            done = terminated or truncated


def _save(frame: np.ndarray, path: Path) -> None:
    Image.fromarray(np.ascontiguousarray(frame.transpose(1, 2, 0))).save(path, format="PNG", compress_level=1)


def _manifest_parameters(spec: FrameSetSpec) -> dict[str, Any]:
    return json.loads(json.dumps({**asdict(spec), "format_version": FORMAT_VERSION}))


def frames_complete(out: Path, spec: FrameSetSpec) -> bool:
    """``True`` when ``out`` holds these frames; ``UserError`` when it holds frames of other parameters."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        return False
    if json.loads(manifest.read_text()).get("parameters") != _manifest_parameters(spec):
        raise UserError(f"--out: {out} holds frames of other parameters ({manifest}); use another --out")
    return True


def collect_frames(
    out: Path,
    spec: FrameSetSpec,
    agents: Sequence[Agent],
    load_policy: Callable[[Agent], Any],
    progress: bool = True,
) -> dict[str, Any]:
    """Write the frame set of ``spec`` to ``out`` (skipped when complete); returns its manifest."""
    if frames_complete(out, spec):
        return json.loads((out / MANIFEST).read_text())
    partial = out.parent / f"{out.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    for split in ("trainA", "trainB", "testA", "testB"):
        (partial / split).mkdir(parents=True)
    settings = spec.settings
    train_env = make_agent_env(settings, settings.look, seed=spec.seed)
    target_env = make_agent_env(settings, spec.target_look, seed=spec.seed)
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed).spawn(4)[3])
    if spec.policy == "agent":
        policies: list[Callable] = [AgentPolicy(load_policy(agent)) for agent in agents]
    else:
        policies = [SmoothedRandomPolicy(train_env.action_space.shape, rng)]
    total = 2 * spec.frames_per_look + spec.test_pairs
    with tqdm(total=total, desc="frames", unit="frame", disable=not progress, dynamic_ncols=True) as bar:
        for split, env, stream in (("trainA", target_env, 0), ("trainB", train_env, 1)):
            for i, frame in enumerate(rollout(env, policies, spec.frames_per_look, episode_seeds(spec.seed, stream))):
                _save(frame, partial / split / f"{i:06d}.png")
                bar.update(1)
        test_frames = rollout(train_env, policies, spec.test_pairs, episode_seeds(spec.seed, 2), spec.test_stride)
        for i, frame in enumerate(test_frames):
            state = train_env.unwrapped.physics.get_state().copy()
            _save(frame, partial / "testB" / f"{i:06d}.png")
            _save(render_state(target_env, state), partial / "testA" / f"{i:06d}.png")
            bar.update(1)
    train_env.close()
    target_env.close()
    manifest = {
        "parameters": _manifest_parameters(spec),
        "counts": {
            split: len(list((partial / split).glob("*.png"))) for split in ("trainA", "trainB", "testA", "testB")
        },
        "domains": {"A": f"target look {spec.target_look}", "B": f"training look {settings.look}"},
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return manifest
