"""Fixed datasets of DeepMind Control transitions for comparing auxiliary objectives offline.

:func:`transition_dataset` rolls out a policy in a dm_control suite task and stores, per transition
``(o_t, a_t, r_t, o_{t+1})``:

- the pixel observations as the pixel agents see them (``curl_agents.envs.make_env``): a stack of the
  last ``frame_stack`` rendered frames, oldest first, the first frame repeated after ``reset``, one frame
  rendered per AGENT step (after the action repeat), from the task's preset camera. Frames are stored once
  per episode (``frames``, ``(F, 3, S, S)`` uint8) and the stacks as indices into them (``obs_frames`` and
  ``next_obs_frames``, ``(N, frame_stack)``), so ``frames[obs_frames[i]]`` is ``o_t``;
- ``action`` ``(N, A)`` in ``[-1, 1]``, ``reward`` ``(N,)`` (summed over the action repeat), ``done``
  ``(N,)`` (1 only for a true termination; the time limit is not one);
- ``state`` / ``next_state``: the state-variant observation of ``make_env(..., from_pixels=False)``
  (cartpole: cart position, cos and sin of the pole angle, both velocities), the target of the probes;
- ``physics`` / ``next_physics``: ``physics.get_state()`` (positions, velocities, actuator state),
  enough to re-render the frame of a transition exactly;
- ``episode`` and ``t`` (agent step within the episode) of each transition.

The policy acts from the state observation while the frames are rendered (:data:`POLICIES`):
``random`` (uniform in ``[-1, 1]``), ``smoothed_random`` (a clipped AR(1) process, so that actions
persist over steps) or ``sb3`` (any stable-baselines3 model zip, e.g. the ``final_model.zip`` of
``python -m curl_agents.train --algo state_sac``, sampling its stochastic policy).

The split is by episode: the last ``test_episodes`` episodes are the test split, so no trajectory is in
both. A dataset is cached as one ``.npz`` (plus a ``.json`` of its parameters) named by a hash of its
parameters (and of the policy file's bytes), and generating it again gives the same arrays: the task's
initial states come from ``seed`` (``make_env``), the actions from a generator seeded by ``seed``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssl_shared.errors import UserError

#: Bump when the stored arrays change meaning; part of every cache key.
FORMAT_VERSION = 1

#: The behaviour policies a dataset can be collected with.
POLICIES = ("random", "smoothed_random", "sb3")

#: stable-baselines3 classes an ``sb3`` policy zip can be loaded with (``policy_algo``).
SB3_ALGOS = ("state_sac", "sac", "td3", "ddpg", "ppo", "a2c")


@dataclass(frozen=True)
class TransitionSpec:
    """What a transition dataset is made of; every field is part of its cache key.

    Defaults: the CURL setting (Srinivas et al. 2020, arXiv 2004.04136): renders of 100 px (cropped to 84
    by the views), stacks of 3 frames, the task's preset action repeat, 1000-env-step episodes.
    """

    task: str = "cartpole-swingup"
    policy: str = "random"
    policy_path: str | None = None
    policy_algo: str = "state_sac"
    smoothing: float = 0.8
    episodes: int = 40
    test_episodes: int = 8
    render_size: int = 100
    frame_stack: int = 3
    action_repeat: int | None = None
    episode_length: int = 1000
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`UserError` naming the flag for a value that cannot make a dataset."""
        from curl_agents.envs import valid_task_names

        if self.task not in valid_task_names():
            raise UserError(f"--task: unknown value {self.task!r}; allowed: {', '.join(valid_task_names())}")
        if self.policy not in POLICIES:
            raise UserError(f"--policy: unknown value {self.policy!r}; allowed: {', '.join(POLICIES)}")
        if self.policy == "sb3":
            if not self.policy_path or not Path(self.policy_path).is_file():
                raise UserError(
                    f"--policy-path: {self.policy_path!r} is not a file; --policy sb3 needs a stable-baselines3 model "
                    "zip, e.g. final_model.zip of `python -m curl_agents.train --algo state_sac`"
                )
            if self.policy_algo not in SB3_ALGOS:
                raise UserError(f"--policy-algo: unknown value {self.policy_algo!r}; allowed: {', '.join(SB3_ALGOS)}")
        elif self.policy_path is not None:
            raise UserError(f"--policy-path {self.policy_path!r}: only --policy sb3 reads a model; drop it")
        if not 0.0 <= self.smoothing < 1.0:
            raise UserError(f"--smoothing: got {self.smoothing!r}; allowed: a number in [0, 1)")
        for name, low in (("episodes", 2), ("test_episodes", 1), ("render_size", 8), ("frame_stack", 1),
                          ("episode_length", 1)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"--{name.replace('_', '-')}: got {value!r}; allowed: an integer >= {low}")
        if self.test_episodes >= self.episodes:
            raise UserError(
                f"--test-episodes {self.test_episodes}: allowed: fewer than --episodes {self.episodes} "
                "(both splits need an episode)"
            )
        if self.action_repeat is not None and (isinstance(self.action_repeat, bool) or self.action_repeat < 1):
            raise UserError(f"--action-repeat: got {self.action_repeat!r}; allowed: an integer >= 1, or unset")

    def key(self) -> str:
        """Hash of the parameters (and of the policy file's bytes): the cache file's name."""
        payload: dict[str, Any] = {"format": FORMAT_VERSION, **asdict(self)}
        if self.policy_path is not None:
            payload["policy_path"] = None  # the same model under another path is the same dataset
            payload["policy_sha256"] = file_sha256(Path(self.policy_path))
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------- the stored data


@dataclass(frozen=True)
class Transitions:
    """The arrays of one dataset (see the module docstring), with its split."""

    frames: np.ndarray
    obs_frames: np.ndarray
    next_obs_frames: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    state: np.ndarray
    next_state: np.ndarray
    physics: np.ndarray
    next_physics: np.ndarray
    episode: np.ndarray
    t: np.ndarray
    test_episodes: int

    @classmethod
    def load(cls, path: str | Path) -> Transitions:
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files if name != "test_episodes"}
            return cls(**arrays, test_episodes=int(data["test_episodes"]))

    def __len__(self) -> int:
        return int(self.action.shape[0])

    def split(self, name: str) -> np.ndarray:
        """Indices of the transitions of split ``name``: ``"train"`` (all but the last ``test_episodes``
        episodes) or ``"test"`` (those)."""
        first_test = int(self.episode.max()) + 1 - self.test_episodes
        if name == "train":
            return np.flatnonzero(self.episode < first_test)
        if name == "test":
            return np.flatnonzero(self.episode >= first_test)
        raise ValueError(f"split must be 'train' or 'test', got {name!r}")

    def observations(self, index: np.ndarray, next_obs: bool = False) -> np.ndarray:
        """Stacked frames ``(len(index), 3 * frame_stack, S, S)`` uint8 of ``o_t`` (or ``o_{t+1}``)."""
        which = self.next_obs_frames if next_obs else self.obs_frames
        stack = self.frames[which[index]]  # (n, k, 3, S, S)
        return stack.reshape(stack.shape[0], -1, *stack.shape[-2:])


# ----------------------------------------------------------------------------------------- policies

Policy = Callable[[np.ndarray], np.ndarray]


class RandomPolicy:
    """Uniform actions in ``[-1, 1]``, i.i.d. over steps."""

    def __init__(self, action_dim: int, rng: np.random.Generator) -> None:
        self.action_dim, self.rng = action_dim, rng

    def reset(self) -> None:
        pass

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)


class SmoothedRandomPolicy:
    """``a_t = clip(u_t, -1, 1)``, ``u_t = beta * u_{t-1} + sqrt(1 - beta^2) * eps_t``, ``eps_t ~ N(0, I)``:
    a stationary unit-variance AR(1) process (restarted from ``u_0 = eps_0`` each episode), so the
    actions persist over about ``1 / (1 - beta)`` steps and the system moves further than under i.i.d. noise."""

    def __init__(self, action_dim: int, rng: np.random.Generator, beta: float) -> None:
        self.action_dim, self.rng, self.beta = action_dim, rng, beta
        self.u: np.ndarray | None = None

    def reset(self) -> None:
        self.u = None

    def __call__(self, state: np.ndarray) -> np.ndarray:
        eps = self.rng.standard_normal(self.action_dim)
        self.u = eps if self.u is None else self.beta * self.u + np.sqrt(1.0 - self.beta**2) * eps
        return np.clip(self.u, -1.0, 1.0).astype(np.float32)


class Sb3Policy:
    """A stable-baselines3 model acting from the state observation, sampling its stochastic policy
    (``predict(deterministic=False)``) with a torch generator state of its own, seeded by the dataset."""

    def __init__(self, path: str, algo: str, observation_dim: int, seed: int) -> None:
        import torch

        cls = _sb3_class(algo)
        self.model = cls.load(path, device="cpu")
        shape = tuple(self.model.observation_space.shape)
        if shape != (observation_dim,):
            raise UserError(
                f"--policy-path {path}: the model observes shape {shape}, the task's state observation is "
                f"({observation_dim},); allowed: a model trained on this task's state variant"
            )
        self.seed = seed
        self._torch = torch
        self._rng_state = torch.Generator().manual_seed(seed).get_state()

    def reset(self) -> None:
        pass

    def __call__(self, state: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._rng_state)
            action, _ = self.model.predict(state, deterministic=False)
            self._rng_state = torch.get_rng_state()
        return np.asarray(action, dtype=np.float32)


def _sb3_class(algo: str) -> type:
    if algo == "state_sac":
        from curl_agents.algorithms import StateSAC

        return StateSAC
    import stable_baselines3

    return getattr(stable_baselines3, algo.upper())


def make_policy(spec: TransitionSpec, action_dim: int, observation_dim: int) -> Any:
    rng = np.random.default_rng(spec.seed)
    if spec.policy == "random":
        return RandomPolicy(action_dim, rng)
    if spec.policy == "smoothed_random":
        return SmoothedRandomPolicy(action_dim, rng, spec.smoothing)
    return Sb3Policy(str(spec.policy_path), spec.policy_algo, observation_dim, spec.seed)


# ----------------------------------------------------------------------------------------- generation


def stack_indices(t: int, frame_stack: int) -> list[int]:
    """Frame numbers (within an episode, 0 = the frame after ``reset``) of the observation after ``t`` agent
    steps: ``t - k + 1, ..., t``, clipped at 0 (after ``reset`` the first frame fills the stack)."""
    return [max(0, t - frame_stack + 1 + j) for j in range(frame_stack)]


def collect(spec: TransitionSpec) -> dict[str, np.ndarray]:
    """Roll out ``spec``'s policy and return the arrays of :class:`Transitions` (see the module docstring)."""
    from curl_agents.envs import make_env

    env = make_env(
        spec.task,
        from_pixels=False,
        image_size=spec.render_size,
        action_repeat=spec.action_repeat,
        frame_stack=spec.frame_stack,
        seed=spec.seed,
        episode_length=spec.episode_length,
    )
    physics = env.unwrapped.physics
    action_dim = int(np.prod(env.action_space.shape))
    policy = make_policy(spec, action_dim, int(np.prod(env.observation_space.shape)))
    out: dict[str, list] = {k: [] for k in ("frames", "obs_frames", "next_obs_frames", "action", "reward", "done",
                                            "state", "next_state", "physics", "next_physics", "episode", "t")}  # fmt: skip
    try:
        for episode in range(spec.episodes):
            state, _ = env.reset()
            policy.reset()
            first = len(out["frames"])
            out["frames"].append(_frame(env))
            t, ended = 0, False
            while not ended:
                before = np.asarray(physics.get_state(), dtype=np.float64).copy()
                action = policy(state)
                next_state, reward, terminated, truncated, _ = env.step(action)
                out["frames"].append(_frame(env))
                out["obs_frames"].append([first + i for i in stack_indices(t, spec.frame_stack)])
                out["next_obs_frames"].append([first + i for i in stack_indices(t + 1, spec.frame_stack)])
                out["action"].append(np.asarray(action, dtype=np.float32).reshape(action_dim))
                out["reward"].append(reward)
                out["done"].append(float(terminated))
                out["state"].append(state)
                out["next_state"].append(next_state)
                out["physics"].append(before)
                out["next_physics"].append(np.asarray(physics.get_state(), dtype=np.float64).copy())
                out["episode"].append(episode)
                out["t"].append(t)
                state, t, ended = next_state, t + 1, terminated or truncated
    finally:
        env.close()
    dtypes = {"frames": np.uint8, "obs_frames": np.int64, "next_obs_frames": np.int64, "action": np.float32,
              "reward": np.float32, "done": np.float32, "state": np.float32, "next_state": np.float32,
              "physics": np.float64, "next_physics": np.float64, "episode": np.int64, "t": np.int64}  # fmt: skip
    return {k: np.asarray(v, dtype=dtypes[k]) for k, v in out.items()}


def _frame(env: Any) -> np.ndarray:
    """The camera image the pixel env would stack now, channel-first ``(3, S, S)`` uint8."""
    return np.ascontiguousarray(env.render().transpose(2, 0, 1))


def transition_dataset(spec: TransitionSpec, cache_dir: str | Path) -> Path:
    """The cached ``.npz`` of ``spec`` in ``cache_dir``, generated first when missing.

    A lock file serialises generation, so cells that need the same dataset at the same time generate it
    once; the file appears atomically (written to a temporary name, then renamed).
    """
    spec.validate()
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{spec.task}_{spec.policy}_{spec.key()}"
    path = cache_dir / f"{stem}.npz"
    with _locked(cache_dir / f"{stem}.lock"):
        if path.is_file():
            return path
        arrays = collect(spec)
        tmp = cache_dir / f".{stem}.tmp.npz"
        np.savez_compressed(tmp, **arrays, test_episodes=np.int64(spec.test_episodes))
        meta = {"format": FORMAT_VERSION, **asdict(spec), "transitions": int(arrays["action"].shape[0])}
        if spec.policy_path is not None:
            meta["policy_sha256"] = file_sha256(Path(spec.policy_path))
        (cache_dir / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n")
        tmp.replace(path)
    return path


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
