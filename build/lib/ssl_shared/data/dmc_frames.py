"""DeepMind Control frames paired with the true physical state, for SSL pre-training and state probes.

``generate_dmc_frames`` rolls out a uniformly random policy in a dm_control suite task, renders each step
headless (``MUJOCO_GL=egl`` or ``osmesa``) and saves ``frames`` (N, 3, S, S) uint8, ``states`` (N, D)
float32 (the flattened ``physics.get_state()``: positions and velocities), ``episode`` and ``t``
indices to one ``.npz``. The file is cached: a second call with the same parameters loads it.

A linear probe from frozen features to ``states`` (R^2) is the probe that matters for RL: it asks
whether the representation holds the information a controller needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset


def generate_dmc_frames(
    out: str | Path,
    task: str = "cartpole-swingup",
    episodes: int = 20,
    steps_per_episode: int = 50,
    image_size: int = 64,
    action_repeat: int = 4,
    camera_id: int = 0,
    seed: int = 0,
) -> Path:
    """Render ``episodes x steps_per_episode`` frames of ``task`` under a random policy into ``out``."""
    out = Path(out)
    params = dict(
        task=task,
        episodes=episodes,
        steps_per_episode=steps_per_episode,
        image_size=image_size,
        action_repeat=action_repeat,
        camera_id=camera_id,
        seed=seed,
    )
    meta_path = out.with_suffix(".json")
    if out.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == params:
        return out
    from dm_control import suite

    domain, _, task_name = task.partition("-")
    if (domain, task_name) not in suite.ALL_TASKS:
        names = sorted(f"{d}-{t}" for d, t in suite.ALL_TASKS)
        raise ValueError(f"unknown dm_control task {task!r}; valid: {names}")
    if episodes < 1 or steps_per_episode < 1 or image_size < 8:
        raise ValueError(
            f"need episodes >= 1, steps >= 1, image_size >= 8; got {episodes}, {steps_per_episode}, {image_size}"
        )
    rng = np.random.default_rng(seed)
    env = suite.load(domain, task_name, task_kwargs={"random": seed})
    spec = env.action_spec()
    frames, states, episode_ids, ts = [], [], [], []
    for ep in range(episodes):
        env.reset()
        for t in range(steps_per_episode):
            frames.append(env.physics.render(image_size, image_size, camera_id=camera_id).transpose(2, 0, 1))
            states.append(np.asarray(env.physics.get_state(), dtype=np.float32))
            episode_ids.append(ep)
            ts.append(t)
            action = rng.uniform(spec.minimum, spec.maximum, size=spec.shape)
            for _ in range(action_repeat):
                env.step(action)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        frames=np.stack(frames).astype(np.uint8),
        states=np.stack(states),
        episode=np.array(episode_ids),
        t=np.array(ts),
    )
    tmp.replace(out)
    meta_path.write_text(json.dumps(params))
    return out


class DMCFramesDataset(Dataset):
    """Frames from :func:`generate_dmc_frames` with the physical state as ``label``.

    Episodes are split (not frames) so train and test never share a trajectory: the last
    ``test_fraction`` of episodes is the test split. With ``sequence_length = T > 1`` each item
    also holds ``frames`` (T, 3, S, S): T consecutive frames of the same episode starting at the item
    (shifted back at the end of an episode), for temporal methods.
    """

    def __init__(self, path: str | Path, split: str = "train", test_fraction: float = 0.2, sequence_length: int = 1):
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if not Path(path).exists():
            raise FileNotFoundError(f"DMC frames file {path} not found; create it with generate_dmc_frames()")
        data = np.load(path)
        episode = data["episode"]
        n_episodes = int(episode.max()) + 1
        n_test = max(1, int(round(test_fraction * n_episodes))) if split != "all" else 0
        if split == "train":
            keep = episode < n_episodes - n_test
        elif split == "test":
            keep = episode >= n_episodes - n_test
        else:
            keep = np.ones_like(episode, dtype=bool)
        if not keep.any():
            raise ValueError(f"split {split!r} of {path} is empty ({n_episodes} episodes)")
        self.frames = torch.from_numpy(data["frames"][keep])
        self.states = torch.from_numpy(data["states"][keep])
        self.episode = torch.from_numpy(episode[keep])
        self.t = torch.from_numpy(data["t"][keep])
        if sequence_length < 1:
            raise ValueError(f"sequence_length must be >= 1, got {sequence_length}")
        self.sequence_length = sequence_length
        self.state_dim = self.states.shape[1]

    def __len__(self) -> int:
        return self.frames.shape[0]

    def _sequence(self, i: int) -> torch.Tensor:
        same = torch.nonzero(self.episode == self.episode[i]).flatten()
        first, last = int(same.min()), int(same.max())
        start = min(i, last - self.sequence_length + 1)
        if start < first:
            raise ValueError(f"episodes are shorter than sequence_length={self.sequence_length}")
        return self.frames[start : start + self.sequence_length].float() / 255.0

    def __getitem__(self, i: int) -> dict:
        item = {"image": self.frames[i].float() / 255.0, "label": self.states[i], "index": i}
        if self.sequence_length > 1:
            item["frames"] = self._sequence(i)
        return item
