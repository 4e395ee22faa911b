"""``dmc-restyle``: an offline unpaired-translation benchmark with paired ground truth for testing.

Domain A is DeepMind Control Suite (Tassa et al. 2018) frames in their default look. Domain B shows the
same scenes restyled: another floor texture and colour, other body colours, another sky and warmer,
dimmer lighting, and a matte floor. The restyle edits only colours, textures and light intensities of
a copy of the compiled MuJoCo model (``mat_rgba``, ``geom_rgba``, ``tex_data``, ``light_*``, the
headlight) and re-uploads the textures to the render context, so geometry, kinematics and camera are
identical by construction (checked in the tests with segmentation renders).

Splits, for every task in ``tasks``::

    trainA  default look of states from one set of rollouts      } disjoint states: unpaired
    trainB  restyled look of states from another set of rollouts }
    testA / testB  the same states rendered in both looks, same file names: ground-truth pairs

States come from episodes of a temporally correlated random policy; every split and task has its own
seed derived from ``seed`` (``numpy.random.SeedSequence``), so the same arguments give byte-identical
PNGs. Images are rendered into a sibling folder ``OUT.partial/`` that replaces ``OUT`` once complete
(with ``manifest.json``: parameters + counts), so ``OUT`` is never half-written; a failed run removes its
``.partial`` folder, and the next start removes the one a killed run left (or, when it is complete and
``OUT`` is missing, moves it into place). A rerun with the same parameters is skipped.

Usage: ``MUJOCO_GL=egl scv-dmc-restyle --out data/dmc-restyle --size 64 --train 1000 --test 200 --seed 0``
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from curl_agents.looks import SUITE_TEXTURES, Style, object_id
from curl_agents.looks import apply_style as looks_apply_style
from curl_agents.looks import floor_texture as floor_texture  # re-exported: the style's texture helpers
from curl_agents.looks import recolour_sky as recolour_sky
from ssl_shared.cli import (
    OneLineArgumentParser,
    add_dataclass_options,
    check_positive,
    command,
    explicit_values,
    flag_name,
)
from ssl_shared.errors import UserError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
MIN_SIZE, MAX_SIZE = 64, 256
DEFAULT_TASKS: tuple[str, ...] = ("cheetah-run", "walker-walk", "cartpole-swingup")
ALLOWED_GL = ("egl", "osmesa", "glfw")
SPLITS = ("trainA", "trainB", "testA", "testB")


@dataclass(frozen=True)
class RolloutConfig:
    """How states are visited: episodes of a smoothed random policy, one state kept every ``stride`` steps."""

    warmup_steps: int = 20
    stride: int = 8
    states_per_episode: int = 25
    action_smoothing: float = 0.7  # a_t = clip(s * a_{t-1} + (1 - s) * 2 * u_t), u_t ~ N(0, 1)


@dataclass(frozen=True)
class RestyleConfig:
    """Parameters of one benchmark; everything that changes the images is recorded in the manifest."""

    out: str = "data/dmc-restyle"  # output folder (trainA/B, testA/B, manifest.json)
    size: int = 64  # image side in pixels, 64-256
    train: int = 1000  # images per training domain, split evenly over the tasks
    test: int = 200  # ground-truth pairs, split evenly over the tasks
    seed: int = 0  # seeds every rollout; the same arguments give byte-identical PNGs
    tasks: tuple[str, ...] = DEFAULT_TASKS  # dm_control 'domain-task' names
    camera_id: int = 0  # dm_control camera to render from
    style: Style = field(default_factory=Style)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not MIN_SIZE <= self.size <= MAX_SIZE:
            raise UserError(f"--size: got {self.size!r}; allowed: an integer from {MIN_SIZE} to {MAX_SIZE} px")
        for name in ("train", "test"):
            check_positive(name, getattr(self, name))
        check_positive("seed", self.seed, allow_zero=True)
        check_positive("camera_id", self.camera_id, allow_zero=True)
        if not self.tasks:
            raise UserError("--tasks: got none; allowed: one or more 'domain-task' names, e.g. cheetah-run")
        for name in self.tasks:
            parse_task(name)


#: Fields of :class:`RestyleConfig` that are not command-line options (the look and the rollouts are fixed).
NOT_OPTIONS = ("style", "rollout")


def parse_task(name: str) -> tuple[str, str]:
    """'cheetah-run' -> ('cheetah', 'run'); ``UserError`` for a malformed name."""
    domain, sep, task = name.partition("-")
    if not sep or not domain or not task:
        raise UserError(f"--tasks: got {name!r}; allowed: 'domain-task' names (e.g. cheetah-run)")
    return domain, task


def check_tasks(tasks: Sequence[str]) -> None:
    """``UserError`` naming the first task that the installed dm_control suite does not have."""
    from dm_control import suite

    for name in tasks:
        if parse_task(name) not in suite.ALL_TASKS:
            raise UserError(f"--tasks: unknown dm_control task {name!r}; e.g. {', '.join(DEFAULT_TASKS)}")


def split_counts(total: int, parts: int) -> list[int]:
    """``total`` items over ``parts`` tasks, the first ``total % parts`` tasks get one more."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def require_headless_gl() -> None:
    """``UserError`` unless MUJOCO_GL names a rendering backend (must be set before dm_control loads)."""
    backend = os.environ.get("MUJOCO_GL", "")
    if backend not in ALLOWED_GL:
        raise UserError(
            f"dmc-restyle renders with MuJoCo and needs MUJOCO_GL set before start (got {backend!r}); "
            f"run e.g. `MUJOCO_GL=egl scv-dmc-restyle ...` (allowed: {', '.join(ALLOWED_GL)})"
        )


# ----------------------------------------------------------------------------------------------------
# Restyling a compiled model (the look lives in curl_agents.looks, where make_env(look="restyled") uses it)


def apply_style(physics: Any, style: Style) -> None:
    """Restyle ``physics``'s model in place (:func:`curl_agents.looks.apply_style`); ``UserError`` naming
    ``--tasks`` when the task's model lacks the suite textures 'grid' or 'skybox'."""
    for name in SUITE_TEXTURES:
        if object_id(physics.model, name, "texture") < 0:
            raise UserError(f"--tasks: dmc-restyle needs the suite texture {name!r}, which this task's model lacks")
    looks_apply_style(physics, style)


# ----------------------------------------------------------------------------------------------------
# Visiting states


def collect_states(env: Any, count: int, rng: np.random.Generator, rollout: RolloutConfig) -> list[np.ndarray]:
    """``count`` physics states from episodes of a smoothed random policy in a dm_control ``env``."""
    spec = env.action_spec()
    low, high = spec.minimum, spec.maximum
    states: list[np.ndarray] = []
    while len(states) < count:
        env.reset()
        action = np.zeros(spec.shape)
        for step in range(rollout.warmup_steps + rollout.stride * rollout.states_per_episode):
            noise = 2.0 * rng.standard_normal(spec.shape)
            action = rollout.action_smoothing * action + (1.0 - rollout.action_smoothing) * noise
            action = np.clip(action, -1.0, 1.0)
            env.step(low + (action + 1.0) * 0.5 * (high - low))
            after_warmup = step + 1 - rollout.warmup_steps
            if after_warmup > 0 and after_warmup % rollout.stride == 0:
                states.append(env.physics.get_state().copy())
                if len(states) == count:
                    break
    return states


def render_state(physics: Any, state: np.ndarray, size: int, camera_id: int) -> np.ndarray:
    """Render ``state`` from ``camera_id`` as uint8 (size, size, 3)."""
    with physics.reset_context():
        physics.set_state(state)
    return physics.render(height=size, width=size, camera_id=camera_id)


def render_segmentation(physics: Any, state: np.ndarray, size: int, camera_id: int) -> np.ndarray:
    """Geom-id segmentation (size, size) of ``state``; two looks with the same geometry and camera agree."""
    with physics.reset_context():
        physics.set_state(state)
    return physics.render(height=size, width=size, camera_id=camera_id, segmentation=True)[..., 0]


class TaskRenderer:
    """One dm_control task with two render copies of its model: the default look (A) and the style (B)."""

    def __init__(self, task_name: str, style: Style, seed: int) -> None:
        require_headless_gl()
        from dm_control import suite

        domain, task = parse_task(task_name)
        if (domain, task) not in suite.ALL_TASKS:
            raise UserError(f"--tasks: unknown dm_control task {task_name!r}; e.g. {', '.join(DEFAULT_TASKS)}")
        self.env = suite.load(domain, task, task_kwargs={"random": seed})
        self.physics_a = self.env.physics.copy(share_model=False)
        self.physics_b = self.env.physics.copy(share_model=False)
        try:
            self.physics_b.contexts  # noqa: B018 -- opens the GL context: fail here, with a clear message
        except Exception as err:  # the backends raise various types (ImportError, RuntimeError, ...)
            raise UserError(
                f"MuJoCo rendering failed with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}: {err}. Headless "
                f"machines need EGL (libEGL, e.g. Mesa) or OSMesa."
            ) from err
        apply_style(self.physics_b, style)

    def reseed(self, seed: int) -> None:
        """New episode randomness (initial states) for the rollout environment."""
        self.env.task.random.seed(seed)

    def render(self, state: np.ndarray, look: str, size: int, camera_id: int) -> np.ndarray:
        physics = {"A": self.physics_a, "B": self.physics_b}[look]
        return render_state(physics, state, size, camera_id)


# ----------------------------------------------------------------------------------------------------
# The benchmark


def manifest_parameters(config: RestyleConfig) -> dict[str, Any]:
    """Everything that determines the images (the cache key)."""
    from importlib.metadata import version

    params = asdict(config)
    params.pop("out")
    params["tasks"] = list(config.tasks)
    params["format_version"] = FORMAT_VERSION
    params["mujoco_version"] = version("mujoco")
    params["dm_control_version"] = version("dm-control")
    return json.loads(json.dumps(params))  # tuples -> lists, as they come back from the file


def _seeds(seed: int, n_tasks: int) -> dict[str, list[np.random.SeedSequence]]:
    """Independent seed sequences per (split, task): train A, train B and test never share states."""
    root = np.random.SeedSequence(seed)
    train_a, train_b, test = root.spawn(3)
    return {"trainA": train_a.spawn(n_tasks), "trainB": train_b.spawn(n_tasks), "test": test.spawn(n_tasks)}


def _int_seed(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1)[0])


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=6)


def partial_folder(out: Path) -> Path:
    """Where ``out`` is rendered before it replaces ``out``: the sibling ``<out>.partial``."""
    return out.parent / f"{out.name}.partial"


def clean_partial(out: Path) -> None:
    """Deal with the ``.partial`` folder a killed run left: a complete one (with its manifest) whose move
    into place was interrupted becomes ``out``; anything else is removed."""
    partial = partial_folder(out)
    if not partial.exists():
        return
    if (partial / MANIFEST).is_file() and not out.exists():
        os.replace(partial, out)
    else:
        shutil.rmtree(partial)


def generate(config: RestyleConfig, overwrite: bool = False) -> dict[str, Any]:
    """Write the benchmark under ``config.out`` and return its manifest (cached: skipped if identical)."""
    require_headless_gl()
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; allowed: a folder (new, or one holding this benchmark)")
    clean_partial(out)
    params = manifest_parameters(config)
    manifest_path = out / MANIFEST
    if manifest_path.exists() and not overwrite:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("parameters") == params:
            print(f"scv-dmc-restyle: {out} already holds this benchmark ({manifest_path}); skipping")
            return manifest
        raise UserError(
            f"--out {out} holds a dmc-restyle benchmark with other parameters ({manifest_path}); "
            f"choose another --out or pass --overwrite"
        )
    if out.exists() and any(out.iterdir()) and not manifest_path.exists() and not overwrite:
        raise UserError(f"--out {out} exists, is not empty and has no {MANIFEST}; choose another --out or --overwrite")
    check_tasks(config.tasks)

    start = time.time()
    partial = partial_folder(out)
    try:
        for split in SPLITS:
            (partial / split).mkdir(parents=True)
        counts = _render_all(config, partial)
        manifest = {
            "parameters": params,
            "counts": counts,
            "splits": {split: len(list((partial / split).glob("*.png"))) for split in SPLITS},
            "wall_seconds": round(time.time() - start, 1),
            "command": "dmc-restyle " + " ".join(_cli_args(config)),
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return manifest


def _render_all(config: RestyleConfig, folder: Path) -> dict[str, dict[str, int]]:
    seeds = _seeds(config.seed, len(config.tasks))
    train_counts = split_counts(config.train, len(config.tasks))
    test_counts = split_counts(config.test, len(config.tasks))
    total = 2 * config.train + 2 * config.test
    counts: dict[str, dict[str, int]] = {}
    with tqdm(total=total, desc="scv-dmc-restyle", unit="img") as bar:
        for i, name in enumerate(config.tasks):
            renderer = TaskRenderer(name, config.style, seed=0)
            jobs = (
                ("trainA", ("A",), train_counts[i]),
                ("trainB", ("B",), train_counts[i]),
                ("test", ("A", "B"), test_counts[i]),
            )
            for split, looks, n in jobs:
                seq = seeds[split][i]
                env_seed, policy_seq = seq.spawn(2)
                renderer.reseed(_int_seed(env_seed) % 2**32)
                states = collect_states(renderer.env, n, np.random.default_rng(policy_seq), config.rollout)
                for k, state in enumerate(states):
                    for look in looks:
                        target = f"{split}{look}" if split == "test" else split
                        image = renderer.render(state, look, config.size, config.camera_id)
                        _save_png(image, folder / target / f"{name}_{k:05d}.png")
                        bar.update(1)
            counts[name] = {"train_per_domain": train_counts[i], "test_pairs": test_counts[i]}
    return counts


def _cli_args(config: RestyleConfig) -> list[str]:
    """The options that reproduce ``config`` (for the manifest's command line)."""
    args = []
    for f in fields(config):
        if f.name in NOT_OPTIONS:
            continue
        value = getattr(config, f.name)
        args += [flag_name(f.name), *(map(str, value) if isinstance(value, tuple) else [str(value)])]
    return args


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog="scv-dmc-restyle",
        description="Render the dmc-restyle unpaired translation benchmark (needs MUJOCO_GL=egl).",
    )
    add_dataclass_options(parser, RestyleConfig, exclude=NOT_OPTIONS)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing benchmark in --out")
    return parser


@command("scv-dmc-restyle")
def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = RestyleConfig(**explicit_values(args, RestyleConfig))
    manifest = generate(config, overwrite=args.overwrite)
    print(f"scv-dmc-restyle: {config.out}: {json.dumps(manifest['splits'])}")


if __name__ == "__main__":
    main()
