"""DeepMind Control suite tasks as gymnasium environments, with pixels, action repeat and frame stack.

``make_env("cheetah-run")`` builds the env CURL, RAD and DrQ train on: each agent action is repeated
``action_repeat`` times (the rewards are summed), the observation is the last ``frame_stack`` rendered
frames, channel-first ``uint8`` of shape ``(3 * frame_stack, image_size, image_size)``, ``Box(0, 255)``.
After ``reset`` the stack holds the first frame repeated ``frame_stack`` times. ``from_pixels=False``
gives the state variant instead: the dm_control observation dict flattened to one ``float32`` vector.

Step convention (the one the CURL paper and its tables use):
    Steps are counted in ENVIRONMENT steps, i.e. dm_control control steps before action repeat.
    One agent step (one ``env.step`` call) is ``action_repeat`` environment steps. A DMC episode is
    1000 environment steps. "100K steps" = 100,000 environment steps = 12,500 agent steps for
    cartpole-swingup (action repeat 8), 25,000 at action repeat 4, 50,000 at action repeat 2.
    ``agent_steps`` and ``env_steps`` below convert. The official CURL code logs agent steps, which is
    a common source of confusion (MishaLaskin/curl issue #3: "100k env steps = 25k agent steps with action
    repeat of 4").

Time limit: ``episode_length`` environment steps, i.e. ``episode_length // action_repeat`` agent steps
(``episode_length`` must be a multiple of ``action_repeat``). Reaching it returns ``truncated=True,
terminated=False`` so value targets keep bootstrapping. DMC suite tasks never terminate on their own;
should a task end the episode with discount 0, the env reports ``terminated=True`` (discount > 0:
``truncated=True``). The action repeat stops early when the episode ends.

Actions: ``Box(-1, 1)`` float32, clipped to that box and mapped affinely onto the task's action bounds
(the identity for the suite tasks with bounds [-1, 1]). The lqr tasks, whose bounds are +-1e10, are
not supported.

Seeding: ``seed`` seeds the task's ``numpy.random.RandomState`` (dm_control ``task_kwargs={"random":
seed}``), which draws every initial state, and the action space. ``reset(seed=s)`` reseeds that same
RandomState in place (``RandomState.seed(s)``) and the action space, so it reproduces exactly what a
new env built with ``seed=s`` does on its first reset.

Rendering is headless through MuJoCo: set ``MUJOCO_GL=egl`` (or ``osmesa``, which needs the Debian
package ``libosmesa6``) before Python starts. When ``MUJOCO_GL`` is unset and there is no display
(``DISPLAY``/``WAYLAND_DISPLAY``), the first import of dm_control here sets ``MUJOCO_GL=egl``: dm_control
would otherwise pick GLFW, which cannot open a window there. Without a working backend ``make_env`` raises
a ``RuntimeError`` saying so (it renders one frame at construction).

Imports: this module imports dm_control (and with it MuJoCo and PyOpenGL) only when an env is built,
so ``import curl_agents`` stays free of them. The gymnasium ids are registered from :data:`SUITE_TASKS`,
the suite's task list written out here. Before dm_control, the first build imports torchvision (which
loads ``torch._dynamo`` and triton): importing triton after dm_control's EGL renderer segfaults.

Adding an environment: any dm_control suite ``domain-task`` already works and is registered as
``curl_agents/<domain>-<task>-v0`` (pixels) and ``curl_agents/<domain>-<task>-state-v0``. A task that a
newer dm_control adds goes into :data:`SUITE_TASKS` (a test compares it with the installed suite). To
give a task paper settings (action repeat, camera), add a ``TaskPreset`` to
``curl_agents.presets.PLANET_PRESETS``; per-task learning rates belong to the algorithm class
(``task_learning_rates``).
"""

from __future__ import annotations

import os
from collections import deque
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from curl_agents.looks import apply_look, check_look
from curl_agents.presets import PLANET_PRESETS, default_camera

_MAX_ACTION_BOUND = 1e6  # tasks with larger action bounds (lqr: 1e10) cannot be mapped from [-1, 1]

#: ``dm_control.suite.ALL_TASKS`` of dm-control 1.0.50 (``dm_control/suite/__init__.py``), domain by domain
#: in the suite's order, so that the task names are known without importing dm_control.
_SUITE_DOMAIN_TASKS: dict[str, tuple[str, ...]] = {
    "acrobot": ("swingup", "swingup_sparse"),
    "ball_in_cup": ("catch",),
    "cartpole": ("balance", "balance_sparse", "swingup", "swingup_sparse", "two_poles", "three_poles"),
    "cheetah": ("run",),
    "dog": ("stand", "walk", "trot", "run", "fetch"),
    "finger": ("spin", "turn_easy", "turn_hard"),
    "fish": ("upright", "swim"),
    "hopper": ("stand", "hop"),
    "humanoid": ("stand", "walk", "run", "run_pure_state"),
    "humanoid_CMU": ("stand", "walk", "run"),
    "lqr": ("lqr_2_1", "lqr_6_2"),
    "manipulator": ("bring_ball", "bring_peg", "insert_ball", "insert_peg"),
    "pendulum": ("swingup",),
    "point_mass": ("easy", "hard"),
    "quadruped": ("walk", "run", "escape", "fetch"),
    "reacher": ("easy", "hard"),
    "stacker": ("stack_2", "stack_4"),
    "swimmer": ("swimmer6", "swimmer15"),
    "walker": ("stand", "walk", "run"),
}

#: Every ``(domain, task)`` pair of the suite, in ``dm_control.suite.ALL_TASKS`` order.
SUITE_TASKS: tuple[tuple[str, str], ...] = tuple(
    (domain, task) for domain, tasks in _SUITE_DOMAIN_TASKS.items() for task in tasks
)

_UNSUPPORTED_DOMAINS = ("lqr",)  # action bounds +-1e10 (see _MAX_ACTION_BOUND)


def agent_steps(env_steps: int, action_repeat: int) -> int:
    """Agent steps (``env.step`` calls) needed to cover ``env_steps`` environment steps (rounded up)."""
    _check_positive("action_repeat", action_repeat)
    if env_steps < 0:
        raise ValueError(f"env_steps must be >= 0, got {env_steps}")
    return -(-env_steps // action_repeat)


def env_steps(agent_steps: int, action_repeat: int) -> int:
    """Environment steps covered by ``agent_steps`` agent steps: ``agent_steps * action_repeat``."""
    _check_positive("action_repeat", action_repeat)
    if agent_steps < 0:
        raise ValueError(f"agent_steps must be >= 0, got {agent_steps}")
    return agent_steps * action_repeat


def parse_env_id(env_id: str) -> tuple[str, str]:
    """Split ``"domain-task"`` at the FIRST hyphen (domains may contain underscores: ``ball_in_cup``)."""
    if not isinstance(env_id, str) or "-" not in env_id:
        raise ValueError(f"env_id must look like 'domain-task' (e.g. 'cheetah-run'), got {env_id!r}")
    domain, task = env_id.split("-", 1)
    return domain, task


def valid_task_names() -> list[str]:
    """All supported ``domain-task`` names: :data:`SUITE_TASKS` minus the lqr tasks (no dm_control import)."""
    return [f"{domain}-{task}" for domain, task in SUITE_TASKS if domain not in _UNSUPPORTED_DOMAINS]


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _backend_hint() -> str:
    return (
        f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '<unset>')!r}. Headless rendering needs MUJOCO_GL=egl "
        "(GPU driver or Mesa EGL) or MUJOCO_GL=osmesa (software; Debian/Ubuntu package libosmesa6), "
        "set before Python starts, e.g. `MUJOCO_GL=egl python -m curl_agents.train ...`."
    )


def _import_suite() -> ModuleType:
    """Import ``dm_control.suite``, the torch side first; an invalid MUJOCO_GL makes that import fail,
    so explain how to fix it."""
    import torchvision  # noqa: F401  (loads torch._dynamo and triton, which segfault if imported after dm_control's EGL)

    if "MUJOCO_GL" not in os.environ and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["MUJOCO_GL"] = "egl"  # headless: GLFW (dm_control's unset default) needs a display
    try:
        from dm_control import suite
    except RuntimeError as err:
        raise RuntimeError(f"cannot import dm_control ({err}). {_backend_hint()}") from err
    return suite


class DMCEnv(gym.Env):
    """One dm_control suite task with action repeat, a time limit and (pixel variant) a frame stack.

    Use ``make_env`` to build it; its docstring and the module docstring describe the arguments.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        domain: str,
        task: str,
        *,
        from_pixels: bool,
        image_size: int,
        action_repeat: int,
        frame_stack: int,
        camera_id: int,
        seed: int | None,
        episode_length: int,
        render_backend_check: bool,
    ) -> None:
        super().__init__()
        for name, value in (
            ("image_size", image_size),
            ("action_repeat", action_repeat),
            ("frame_stack", frame_stack),
            ("episode_length", episode_length),
        ):
            _check_positive(name, value)
        if episode_length % action_repeat != 0:
            raise ValueError(
                f"episode_length ({episode_length} env steps) must be a multiple of action_repeat "
                f"({action_repeat}) so that every agent step is action_repeat env steps"
            )
        self.render_mode = "rgb_array"
        self.domain, self.task = domain, task
        self.from_pixels = from_pixels
        self.image_size = image_size
        self.action_repeat = action_repeat
        self.frame_stack = frame_stack
        self.camera_id = camera_id
        self.episode_length = episode_length

        suite = _import_suite()
        # time_limit=inf: the time limit is counted here, so that dm_control never ends an episode itself
        # (its own limit is in seconds and would round differently per domain).
        self._dmc = suite.load(domain, task, task_kwargs={"random": seed, "time_limit": float("inf")})
        spec = self._dmc.action_spec()
        self._action_low = np.asarray(spec.minimum, dtype=np.float64) * np.ones(spec.shape)
        self._action_high = np.asarray(spec.maximum, dtype=np.float64) * np.ones(spec.shape)
        if np.abs(np.concatenate([self._action_low, self._action_high])).max() > _MAX_ACTION_BOUND:
            raise ValueError(f"{domain}-{task}: action bounds are effectively unbounded; not supported")
        self.action_space = spaces.Box(-1.0, 1.0, shape=spec.shape, dtype=np.float32)
        agent_step_seconds = self._dmc.control_timestep() * action_repeat
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": max(1, round(1.0 / agent_step_seconds))}
        self.observation_space = self._make_observation_space()
        num_cameras = self._dmc.physics.model.ncam
        if not -1 <= camera_id < num_cameras:
            raise ValueError(f"camera_id {camera_id} invalid for {domain}: use -1 (free camera) to {num_cameras - 1}")
        if seed is not None:
            self.action_space.seed(seed)

        if from_pixels and render_backend_check:
            self._render_frame()  # fail now, with instructions, rather than at the first reset
        self._frames: deque[np.ndarray] = deque(maxlen=frame_stack)
        self._env_step = 0
        self._needs_reset = True
        self._closed = False

    @property
    def physics(self) -> Any:
        """The dm_control ``Physics`` of the task (read it; changing it changes the episode)."""
        return self._dmc.physics

    # ----------------------------------------------------------------------------------- spaces
    def _make_observation_space(self) -> spaces.Box:
        if self.from_pixels:
            shape = (3 * self.frame_stack, self.image_size, self.image_size)
            return spaces.Box(0, 255, shape=shape, dtype=np.uint8)
        size = sum(int(np.prod(spec.shape)) for spec in self._dmc.observation_spec().values())
        return spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)

    # ----------------------------------------------------------------------------------- observations
    def _render_frame(self) -> np.ndarray:
        """Render one channel-first ``(3, H, W)`` uint8 frame from the task camera."""
        try:
            frame = self._dmc.physics.render(self.image_size, self.image_size, camera_id=self.camera_id)
        except ValueError:  # bad arguments (e.g. image larger than the model's offscreen buffer)
            raise
        except Exception as err:  # a missing backend shows up as FatalError, AttributeError, ...
            raise RuntimeError(f"MuJoCo offscreen rendering failed ({err!r}). {_backend_hint()}") from err
        return np.ascontiguousarray(frame.transpose(2, 0, 1))

    def _state_vector(self, observation: dict[str, Any]) -> np.ndarray:
        parts = [np.asarray(value, dtype=np.float32).ravel() for value in observation.values()]
        return np.concatenate(parts)

    def _observation(self, time_step: Any) -> np.ndarray:
        if not self.from_pixels:
            return self._state_vector(time_step.observation)
        return np.concatenate(self._frames, axis=0)

    # ----------------------------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``seed`` reseeds the task RandomState and the action space first."""
        super().reset(seed=seed)
        if seed is not None:
            self._dmc.task.random.seed(seed)
            self.action_space.seed(seed)
        time_step = self._dmc.reset()
        self._env_step = 0
        self._needs_reset = False
        if self.from_pixels:
            first = self._render_frame()
            self._frames.clear()
            self._frames.extend(first for _ in range(self.frame_stack))
        return self._observation(time_step), {"env_steps": 0}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Repeat ``action`` ``action_repeat`` times (or until the episode ends), summing the rewards."""
        if self._needs_reset:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset()")
        dm_action = self._to_dm_action(action)
        reward = 0.0
        terminated = truncated = False
        for _ in range(self.action_repeat):
            time_step = self._dmc.step(dm_action)
            reward += float(time_step.reward or 0.0)
            self._env_step += 1
            if time_step.last():  # only the task itself can end it: dm_control's own limit is infinite
                terminated = float(time_step.discount) == 0.0
                truncated = not terminated
                break
            if self._env_step >= self.episode_length:
                truncated = True
                break
        self._needs_reset = terminated or truncated
        if self.from_pixels:
            self._frames.append(self._render_frame())
        info = {"env_steps": self._env_step}
        return self._observation(time_step), reward, terminated, truncated, info

    def render(self) -> np.ndarray:
        """The current camera image, ``(image_size, image_size, 3)`` uint8 (for videos)."""
        return self._render_frame().transpose(1, 2, 0)

    def close(self) -> None:
        """Free MuJoCo's rendering context and data now (rather than whenever the GC runs)."""
        if not self._closed:
            self._closed = True
            self._dmc.physics.free()

    def _to_dm_action(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action shape {action.shape} != action space shape {self.action_space.shape}")
        action = np.clip(action, -1.0, 1.0)
        return self._action_low + (action + 1.0) * 0.5 * (self._action_high - self._action_low)


def make_env(
    env_id: str,
    *,
    from_pixels: bool = True,
    image_size: int = 100,
    action_repeat: int | None = None,
    frame_stack: int = 3,
    camera_id: int | None = None,
    seed: int | None = None,
    episode_length: int = 1000,
    render_backend_check: bool = True,
    look: str = "default",
) -> gym.Env:
    """Build the gymnasium env for the dm_control suite task ``env_id`` (``"domain-task"``).

    Args:
        env_id: e.g. ``"cheetah-run"`` or ``"ball_in_cup-catch"`` (split at the first hyphen).
        from_pixels: pixel observations ``(3 * frame_stack, image_size, image_size)`` uint8; ``False``
            gives the flattened float32 state vector (``frame_stack`` and ``image_size`` then only
            affect ``render()``).
        image_size: rendered frame height and width (100 for random-crop methods, CURL and RAD; 84, the
            network input, for methods without crops: DrQ, SAC-AE, pixel SAC).
        action_repeat: env steps per agent step; ``None`` takes the task's ``PLANET_PRESETS`` value,
            or 1 for tasks without a preset.
        frame_stack: number of consecutive frames in an observation.
        camera_id: ``None`` takes the preset camera, i.e. 2 for quadruped and 0 otherwise.
        seed: seeds the task's initial-state RandomState and the action space (see module docstring).
        episode_length: time limit in ENVIRONMENT steps (before action repeat); must be a multiple
            of ``action_repeat``.
        render_backend_check: render one frame at construction so that a missing MuJoCo backend
            fails here with instructions (pixel variant only).
        look: a name of ``curl_agents.looks.LOOKS`` (colours, textures and lights of the scene; geometry,
            dynamics and camera are the same in every look), applied once after construction and kept as
            ``env.look``. Through gymnasium: ``gymnasium.make("curl_agents/cartpole-swingup-v0",
            look="color_shift_1.0")``, which records it in ``env.spec.kwargs``.

    Raises:
        ValueError: unknown domain/task (the message lists the valid names) or bad arguments.
        RuntimeError: no working MuJoCo rendering backend (the message says how to set MUJOCO_GL).
    """
    valid = valid_task_names()
    if env_id not in valid:
        raise ValueError(f"unknown dm_control task {env_id!r}; valid names: {', '.join(valid)}")
    domain, task = parse_env_id(env_id)
    preset = PLANET_PRESETS.get(env_id)
    if action_repeat is None:
        action_repeat = preset.action_repeat if preset is not None else 1
    if camera_id is None:
        camera_id = preset.camera_id if preset is not None else default_camera(domain)
    check_look(look)
    env = DMCEnv(
        domain,
        task,
        from_pixels=from_pixels,
        image_size=image_size,
        action_repeat=action_repeat,
        frame_stack=frame_stack,
        camera_id=camera_id,
        seed=seed,
        episode_length=episode_length,
        render_backend_check=render_backend_check,
    )
    apply_look(env.physics, look)
    env.look = look
    return env


def gym_id(env_id: str, *, from_pixels: bool = True) -> str:
    """The registered gymnasium id of ``env_id``: ``curl_agents/<env_id>-v0`` or ``...-state-v0``."""
    return f"curl_agents/{env_id}-v0" if from_pixels else f"curl_agents/{env_id}-state-v0"


def register_envs() -> None:
    """Register every supported suite task with gymnasium (pixel and state ids); idempotent.

    ``gymnasium.make("curl_agents/cheetah-run-v0", image_size=84)`` then forwards keyword arguments
    to ``make_env``.
    """
    for env_id in valid_task_names():
        for from_pixels in (True, False):
            registered_id = gym_id(env_id, from_pixels=from_pixels)
            if registered_id in gym.registry:
                continue
            gym.register(
                id=registered_id,
                entry_point="curl_agents.envs:make_env",
                kwargs={"env_id": env_id, "from_pixels": from_pixels},
            )
