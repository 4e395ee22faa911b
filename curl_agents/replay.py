"""A replay buffer for frame-stacked pixel observations that stores every rendered frame once.

A pixel observation is a stack of the last ``k`` frames, ``(k * c, H, W)`` uint8 (c = 3 for RGB). An
ordinary replay buffer (SB3's ``ReplayBuffer``, the official CURL buffer) stores ``obs`` and
``next_obs`` stacks per transition, i.e. each frame ``2k`` times: 180,012 B per transition for
CURL's 9x100x100 stacks. Here each frame ``(c, H, W)`` lives once in a frame store, and a transition
keeps ``k + 1`` frame numbers: ``obs`` is frames ``ids[0:k]`` and ``next_obs`` is frames ``ids[1:k+1]``
(``next_obs`` is ``obs`` shifted by one frame, which ``add`` checks). Stacks are rebuilt by one
``index_select`` on the frame store, so they are exactly what the env emitted, also at episode
starts (the first frame repeated: stored once, referenced ``k`` times) and at truncation (the final
next observation is a stored frame like any other).

Drop-in for stable-baselines3 (``SAC(..., replay_buffer_class=FrameReplayBuffer)``): ``add`` takes
SB3's arguments, ``sample`` returns ``ReplayBufferSamples`` with uint8 observations on the training
device. ``dones`` in the samples is 1 only for true termination: a time-limit truncation (SB3 sets
``done=True`` and ``infos[i]["TimeLimit.truncated"]=True``) gives 0 so the target bootstraps, exactly as
SB3's ``ReplayBuffer(handle_timeout_termination=True)``; ``handle_timeout_termination=False`` treats
truncation as termination, as in SB3. The class subclasses SB3's ``ReplayBuffer`` only so that SB3's
type checks (``load_replay_buffer``) accept it; it replaces all of its storage and does not call its
constructor.

How the frame ring stays consistent (per environment of a VecEnv, each with its own frame ring):
    The frame store holds ``frame_capacity`` frames per env, default ``buffer_size + buffer_size // 20
    + 2k`` (5% extra for the first frame of each episode, which is stored in addition to one frame per
    transition; 1000-step DMC episodes need < 1%). Frames are written in order and overwrite the oldest.
    Before a frame is overwritten, every live transition that references it is evicted (oldest first;
    frame numbers grow with the insertion order within an env), so a live transition never points at an
    overwritten frame. With the default capacity this only happens when episodes are shorter than ~20
    agent steps; the buffer then holds fewer than ``buffer_size`` transitions, the oldest leaving first.

Memory: ``frame_capacity / buffer_size`` frames (1.05 at the default) plus ``8 (k+1) + 4 |A| + 4 + 2``
bytes per transition; ``bytes_per_transition()`` and ``nbytes()`` report it. Sampling draws uniform
indices with ``numpy.random`` (as SB3 does, so ``set_random_seed`` covers it).

Where frames live (``storage_device="auto"``): on a CUDA training device, on the GPU when the store takes
at most 70% of the free GPU memory, else in pinned host memory (gathered on the CPU into pinned memory,
then copied asynchronously); on a CPU device, a CPU tensor. The store is ``torch.empty``, so host
memory is committed as it fills.

State observations (1-D vectors) are not handled: the constructor raises and points to SB3's own
``ReplayBuffer``, which is already compact for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from ssl_shared.run_dir import atomic_torch_save

_GPU_FRACTION = 0.7  # the frame store may take this fraction of the free GPU memory


class FrameReplayBuffer(ReplayBuffer):
    """Replay buffer storing each frame once; see the module docstring.

    Args:
        buffer_size: transitions held in total (split over ``n_envs`` as in SB3).
        observation_space: ``Box`` uint8 of shape ``(k * frame_channels, H, W)``.
        action_space: a ``Box``.
        device: training device; samples are returned there.
        n_envs: number of environments of the VecEnv feeding ``add``.
        optimize_memory_usage: must be ``False`` (frames are already stored once).
        handle_timeout_termination: ``True`` (default): sampled ``dones`` exclude time-limit truncations.
        frame_channels: channels of one frame (3 for RGB, 1 for grayscale).
        frame_capacity: frames held per env; ``None`` for the default above. Must be >= k + 1.
        storage_device: ``"auto"`` (see module docstring) or an explicit device for the frame store.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        frame_channels: int = 3,
        frame_capacity: int | None = None,
        storage_device: torch.device | str = "auto",
    ) -> None:
        _check_observation_space(observation_space, frame_channels)
        if optimize_memory_usage:
            raise ValueError(
                "optimize_memory_usage=True does not apply to FrameReplayBuffer: it already stores each "
                "frame once and keeps the final observation of truncated episodes; pass False"
            )
        if not isinstance(action_space, spaces.Box):
            raise ValueError(f"FrameReplayBuffer needs a Box action space, got {action_space}")
        if buffer_size < 1 or n_envs < 1:
            raise ValueError(f"buffer_size and n_envs must be >= 1, got {buffer_size} and {n_envs}")
        # ReplayBuffer.__init__ would allocate obs/next_obs arrays: initialise the base of it only.
        super(ReplayBuffer, self).__init__(buffer_size, observation_space, action_space, device, n_envs)
        self.buffer_size = max(buffer_size // n_envs, 1)  # per env, as in SB3
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination

        channels, height, width = self.obs_shape
        self.frame_channels = frame_channels
        self.frame_stack = channels // frame_channels
        self.frame_shape = (frame_channels, height, width)
        k = self.frame_stack
        if frame_capacity is None:
            frame_capacity = self.buffer_size + self.buffer_size // 20 + 2 * k
        if frame_capacity < k + 1:
            raise ValueError(f"frame_capacity must be >= frame_stack + 1 = {k + 1}, got {frame_capacity}")
        self.frame_capacity = frame_capacity

        frame_bytes = int(np.prod(self.frame_shape))
        store_bytes = n_envs * frame_capacity * frame_bytes
        self.storage_device, self.pinned = _choose_storage(storage_device, self.device, store_bytes)
        self.frames = torch.empty(
            (n_envs * frame_capacity, *self.frame_shape),
            dtype=torch.uint8,
            device=self.storage_device,
            pin_memory=self.pinned,
        )

        size, action_dim = self.buffer_size, self.action_dim
        self.frame_ids = np.zeros((size, n_envs, k + 1), dtype=np.int64)  # frame numbers, per env
        self.actions = np.zeros((size, n_envs, action_dim), dtype=np.float32)
        self.rewards = np.zeros((size, n_envs), dtype=np.float32)
        self.terminated = np.zeros((size, n_envs), dtype=bool)
        self.timeouts = np.zeros((size, n_envs), dtype=bool)
        self._reset_counters()

    # ------------------------------------------------------------------------------------ bookkeeping
    def _reset_counters(self) -> None:
        n_envs, k = self.n_envs, self.frame_stack
        self.pos, self.full = 0, False
        self._n_added = 0  # add() calls so far; transition number t of env e sits in slot t % buffer_size
        self._n_evicted = np.zeros(n_envs, dtype=np.int64)  # transitions 0.._n_evicted[e]-1 of env e are gone
        self._next_frame = np.zeros(n_envs, dtype=np.int64)  # frame number the next write of env e gets
        self._has_last = np.zeros(n_envs, dtype=bool)  # whether env e's episode may continue
        self._last_ids = np.zeros((n_envs, k), dtype=np.int64)  # frame numbers of env e's last next_obs
        self._last_next_obs = np.zeros((n_envs, *self.obs_shape), dtype=np.uint8)  # env e's last next_obs

    def reset(self) -> None:
        """Forget every transition (storage is kept)."""
        self._reset_counters()

    def live_counts(self) -> np.ndarray:
        """Number of live transitions of each env, shape ``(n_envs,)``."""
        return self._n_added - self._n_evicted

    def size(self) -> int:
        """Number of live transitions over all envs (SB3's ``size()`` counts per env)."""
        return int(self.live_counts().sum())

    def nbytes(self) -> int:
        """Bytes allocated by the frame store and the per-transition arrays (not Python overhead)."""
        arrays = (self.frame_ids, self.actions, self.rewards, self.terminated, self.timeouts, self._last_next_obs)
        return self.frames.numel() * self.frames.element_size() + sum(a.nbytes for a in arrays)

    def bytes_per_transition(self) -> float:
        """``nbytes()`` divided by the transition capacity ``buffer_size * n_envs``."""
        return self.nbytes() / (self.buffer_size * self.n_envs)

    # ------------------------------------------------------------------------------------ adding
    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one transition per env (SB3's signature; arrays have leading dimension ``n_envs``)."""
        obs = self._check_batch("obs", obs)
        next_obs = self._check_batch("next_obs", next_obs)
        action = np.asarray(action, dtype=np.float32).reshape((self.n_envs, self.action_dim))
        reward = np.asarray(reward, dtype=np.float32).reshape(self.n_envs)
        done = np.asarray(done).reshape(self.n_envs).astype(bool)
        if len(infos) != self.n_envs:
            raise ValueError(f"infos has {len(infos)} entries, expected n_envs={self.n_envs}")
        slot = self._n_added % self.buffer_size
        for env in range(self.n_envs):
            if self._n_added - self._n_evicted[env] >= self.buffer_size:
                self._n_evicted[env] += 1  # the slot about to be reused held env's oldest transition
            self.frame_ids[slot, env] = self._store_frames(env, obs[env], next_obs[env])
            timeout = bool(infos[env].get("TimeLimit.truncated", False))
            self.timeouts[slot, env] = done[env] and timeout
            self.terminated[slot, env] = done[env] and not timeout
            if done[env]:
                self._has_last[env] = False  # the next obs starts a new episode
        self.actions[slot] = action
        self.rewards[slot] = reward
        self._n_added += 1
        self.pos = self._n_added % self.buffer_size
        self.full = self._n_added >= self.buffer_size

    def _check_batch(self, name: str, array: np.ndarray) -> np.ndarray:
        array = np.asarray(array)
        expected = (self.n_envs, *self.obs_shape)
        if array.shape != expected or array.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8 of shape {expected}, got {array.dtype} {array.shape}")
        return array

    def _store_frames(self, env: int, obs: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        """Write the frames of one transition that are not stored yet; return its ``k + 1`` frame numbers."""
        c = self.frame_channels
        if not np.array_equal(next_obs[:-c], obs[c:]):
            raise ValueError(
                "next_obs is not obs shifted by one frame (next_obs[:-c] != obs[c:]): FrameReplayBuffer needs "
                "frame-stacked observations with the newest frame last; use SB3's ReplayBuffer otherwise"
            )
        continues = (
            self._has_last[env]
            # the frame written below must not overwrite one of the reused frames
            and self._last_ids[env, 0] > self._next_frame[env] - self.frame_capacity
            and np.array_equal(obs, self._last_next_obs[env])
        )
        obs_ids = self._last_ids[env].copy() if continues else self._write_stack(env, obs)
        new_id = self._write_frame(env, next_obs[-c:])
        ids = np.append(obs_ids, new_id)
        self._last_ids[env] = ids[1:]
        self._last_next_obs[env] = next_obs
        self._has_last[env] = True
        return ids

    def _write_stack(self, env: int, stack: np.ndarray) -> np.ndarray:
        """Store the frames of a stack that does not continue a stored one (an episode start).

        Equal neighbouring frames (the reset stack repeats its first frame) are stored once.
        """
        c, ids = self.frame_channels, np.empty(self.frame_stack, dtype=np.int64)
        for j in range(self.frame_stack):
            frame = stack[j * c : (j + 1) * c]
            if j > 0 and np.array_equal(frame, stack[(j - 1) * c : j * c]):
                ids[j] = ids[j - 1]
            else:
                ids[j] = self._write_frame(env, frame)
        return ids

    def _write_frame(self, env: int, frame: np.ndarray) -> int:
        """Write one frame into env's ring, first evicting transitions that use the overwritten frame."""
        number = int(self._next_frame[env])
        self._evict_before(env, number - self.frame_capacity + 1)
        row = env * self.frame_capacity + number % self.frame_capacity
        self.frames[row].copy_(torch.from_numpy(np.ascontiguousarray(frame)))
        self._next_frame[env] += 1
        return number

    def _evict_before(self, env: int, first_kept_frame: int) -> None:
        """Evict env's oldest transitions while they reference a frame numbered below ``first_kept_frame``."""
        while self._n_evicted[env] < self._n_added:
            oldest_slot = self._n_evicted[env] % self.buffer_size
            if self.frame_ids[oldest_slot, env, 0] >= first_kept_frame:  # ids[0] is its oldest frame
                break
            self._n_evicted[env] += 1

    # ------------------------------------------------------------------------------------ sampling
    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """Uniformly sample ``batch_size`` live transitions (with replacement)."""
        if env is not None:
            raise ValueError("FrameReplayBuffer does not support VecNormalize (pixel observations); env must be None")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.size() == 0:
            raise ValueError("cannot sample from an empty FrameReplayBuffer; add transitions first")
        return self.sample_indices(np.random.randint(0, self.size(), size=batch_size))

    def locate(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map live-transition indices to ``(add_call_number, env_index)``.

        Live transitions are numbered ``0 .. size()-1``: env 0's from oldest to newest, then env 1's, ...
        ``add_call_number`` counts ``add`` calls since construction (or ``reset``), starting at 0.
        """
        idx = np.asarray(idx, dtype=np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= self.size())):
            raise ValueError(f"indices must be a 1-D array in [0, {self.size()}), got {idx}")
        ends = np.cumsum(self.live_counts())
        env_index = np.searchsorted(ends, idx, side="right")
        offset = idx - (ends - self.live_counts())[env_index]
        return self._n_evicted[env_index] + offset, env_index

    def sample_indices(self, idx: np.ndarray) -> ReplayBufferSamples:
        """The transitions at live-transition indices ``idx`` (see ``locate``) as ``ReplayBufferSamples``."""
        add_number, env_index = self.locate(idx)
        slot = add_number % self.buffer_size
        rows = env_index[:, None] * self.frame_capacity + self.frame_ids[slot, env_index] % self.frame_capacity
        rows_t = torch.from_numpy(rows).to(self.storage_device)
        k = self.frame_stack
        obs = self._gather(rows_t[:, :k])
        next_obs = self._gather(rows_t[:, 1:])
        dones = self.terminated[slot, env_index]
        if not self.handle_timeout_termination:
            dones = dones | self.timeouts[slot, env_index]
        return ReplayBufferSamples(
            observations=obs,
            actions=self._small(self.actions[slot, env_index]),
            next_observations=next_obs,
            dones=self._small(dones.astype(np.float32).reshape(-1, 1)),
            rewards=self._small(self.rewards[slot, env_index].reshape(-1, 1)),
        )

    def _gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Frames ``rows`` (B, k) -> stacks (B, k*c, H, W) uint8 on the training device."""
        batch = rows.shape[0]
        flat = rows.reshape(-1)
        if self.pinned:
            staging = torch.empty((flat.numel(), *self.frame_shape), dtype=torch.uint8, pin_memory=True)
            torch.index_select(self.frames, 0, flat, out=staging)
            stacks = staging.to(self.device, non_blocking=True)
        else:
            stacks = self.frames.index_select(0, flat).to(self.device)
        return stacks.view(batch, *self.obs_shape)

    def _small(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    # ------------------------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the buffer to ``path`` atomically (:func:`ssl_shared.run_dir.atomic_torch_save`).

        Only frames written so far are saved (at most ``frame_capacity`` per env).
        """
        path = Path(path)
        frames = self._held_frames()
        state = {
            "config": self._config(),
            "frames": frames,
            "n_added": torch.tensor(self._n_added),
            **{name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in self._arrays().items()},
        }
        atomic_torch_save(state, path)

    def load(self, path: str | Path) -> None:
        """Restore a buffer written by ``save`` into this one (same spaces, capacities and n_envs)."""
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
        if state["config"] != self._config():
            raise ValueError(f"saved buffer has config {state['config']}, this buffer has {self._config()}")
        frames = state["frames"]
        self.frames.view(self.n_envs, self.frame_capacity, *self.frame_shape)[:, : frames.shape[1]].copy_(frames)
        for name, value in self._arrays().items():
            value[...] = state[name].numpy()
        self._n_added = int(state["n_added"])
        self.pos = self._n_added % self.buffer_size
        self.full = self._n_added >= self.buffer_size

    def _config(self) -> dict[str, Any]:
        return {
            "obs_shape": list(self.obs_shape),
            "action_dim": self.action_dim,
            "buffer_size": self.buffer_size,
            "n_envs": self.n_envs,
            "frame_channels": self.frame_channels,
            "frame_capacity": self.frame_capacity,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "frame_ids": self.frame_ids,
            "actions": self.actions,
            "rewards": self.rewards,
            "terminated": self.terminated,
            "timeouts": self.timeouts,
            "n_evicted": self._n_evicted,
            "next_frame": self._next_frame,
            "has_last": self._has_last,
            "last_ids": self._last_ids,
            "last_next_obs": self._last_next_obs,
        }

    def _held_frames(self) -> torch.Tensor:
        """The written part of the frame store, ``(n_envs, used, *frame_shape)`` on the CPU, as its own copy:
        saving a view would write the whole preallocated store (3.2 GB at capacity 100K)."""
        used = int(min(self._next_frame.max(), self.frame_capacity))
        store = self.frames.view(self.n_envs, self.frame_capacity, *self.frame_shape)
        return (store if used == self.frame_capacity else store[:, :used].clone()).cpu()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (SB3's ``save_replay_buffer``): only the held frames, moved to the CPU."""
        state = self.__dict__.copy()
        state["frames"] = self._held_frames()
        state["storage_device"], state["pinned"] = torch.device("cpu"), False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Re-allocate the full frame store (on the CPU) around the pickled frames."""
        held = state.pop("frames")
        self.__dict__.update(state)
        self.frames = torch.empty((self.n_envs * self.frame_capacity, *self.frame_shape), dtype=torch.uint8)
        if held.ndim == self.frames.ndim:  # pickles of earlier versions held the whole store
            self.frames.copy_(held)
        else:
            self.frames.view(self.n_envs, self.frame_capacity, *self.frame_shape)[:, : held.shape[1]].copy_(held)


def _check_observation_space(space: spaces.Space, frame_channels: int) -> None:
    if not isinstance(space, spaces.Box) or len(space.shape) != 3 or space.dtype != np.uint8:
        raise ValueError(
            f"FrameReplayBuffer stores uint8 frame stacks of shape (k*c, H, W); got {space}. For state "
            "observations use stable_baselines3's ReplayBuffer (the default replay_buffer_class)."
        )
    if frame_channels < 1 or space.shape[0] % frame_channels != 0:
        raise ValueError(f"{space.shape[0]} observation channels are not a multiple of frame_channels={frame_channels}")


def _choose_storage(requested: torch.device | str, device: torch.device, nbytes: int) -> tuple[torch.device, bool]:
    """Device of the frame store and whether to pin it (host memory feeding a CUDA device)."""
    if requested != "auto":
        storage = torch.device(requested)
    elif device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        storage = device if nbytes <= _GPU_FRACTION * free else torch.device("cpu")
    else:
        storage = torch.device("cpu")
    return storage, storage.type == "cpu" and device.type == "cuda"
