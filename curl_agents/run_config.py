"""The settings of a ``python -m curl_agents.train`` run: :class:`RunConfig`, its command line and how
unset values resolve.

Every flag is a field of :class:`RunConfig` (``env_steps`` -> ``--env-steps``, help from the field's
comment; :func:`ssl_shared.cli.add_dataclass_options`). Values are layered defaults < a resumed run's
``config.json`` < ``--preset`` < flags (:func:`plan_from_args`). Counts carry their unit: ``env_steps``
are dm_control control steps, as the CURL paper (arXiv 2004.04136) counts its 100K / 500K budgets;
``agent_steps`` are ``env.step`` calls (agent steps = env steps / action repeat).

A field left unset (``None``) takes the task's or the algorithm's own value (:func:`resolve`): the
task's PlaNet action repeat (``curl_agents.presets``; 1 for tasks without one), the algorithm's learning
rate for the task (``task_learning_rates``), its constructor's batch size, replay capacity and warm-up,
its network (``policy_defaults``), its render margin and its default objective
(``docs/algorithm_defaults.md`` lists them). :class:`RunPlan` keeps, per field, where the value came from.
Every check raises :class:`ssl_shared.errors.UserError` naming the flag, the value and what is allowed,
before anything is built. Renamed flags (:data:`DEPRECATED_FLAGS`) keep working with a one-line notice,
and ``config.json`` files of earlier versions are read with :func:`legacy_to_current`.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from curl_agents.algorithms import ALGORITHMS
from ssl_shared.cli import OneLineArgumentParser, add_dataclass_options, explicit_values, flag_name
from ssl_shared.errors import UserError
from ssl_shared.precision import Precision

PROG = "python -m curl_agents.train"


def _algo_names() -> list[str]:
    return list(ALGORITHMS)


def _aux_names() -> list[str]:
    from curl_agents.objectives import AUX_OBJECTIVES

    return list(AUX_OBJECTIVES)


def _look_names() -> list[str]:
    from curl_agents.looks import LOOK_NAMES

    return list(LOOK_NAMES)


def _color_augment_names() -> list[str]:
    from curl_agents.algorithms.color_augment import COLOR_AUGMENTS

    return list(COLOR_AUGMENTS)


@dataclass
class RunConfig:
    """Everything that defines a run (``config.json``; ``--resume`` refuses to change it except
    :data:`CHANGEABLE_ON_RESUME`). ``None`` (flag not given): the task's or the algorithm's own value,
    listed in ``docs/algorithm_defaults.md``; the CURL paper's (arXiv 2004.04136) for CURL."""

    env: str = "cartpole-swingup"  # dm_control task 'domain-task', e.g. cheetah-run (any suite task but lqr)
    algo: str = field(default="curl", metadata={"help": "the agent", "choices": _algo_names})
    aux: str | None = field(
        default=None,
        metadata={
            "help": "auxiliary objective; unset: the algorithm's own (curl: curl, sac_ae: reconstruction, else none)",
            "choices": _aux_names,
        },
    )
    aux_kwargs: dict = field(
        default_factory=dict,
        metadata={"help": "the objective's options as a JSON object, e.g. '{\"latent_dim\": 128}'"},
    )
    env_steps: int = 100_000  # training budget in environment steps (CURL paper: 100K and 500K)
    seed: int = 1  # seeds weights, exploration, augmentation and the training episodes
    device: str = "auto"  # auto | cpu | cuda | cuda:N (auto: the first GPU, else the CPU)
    precision: Precision = "auto"  # auto: bf16 where device and algorithm support it
    fused_encoder_step: bool = False  # one encoder pass + one backward for critic and aux loss (not the paper's)
    compile_encoders: bool = False  # torch.compile the pixel encoders (compiles at the first update)
    look: str = field(
        default="default",
        metadata={"help": "scene look of the training env (curl_agents.looks)", "choices": _look_names},
    )
    color_augment: str = field(
        default="none", metadata={"help": "extra colour-augmented critic views", "choices": _color_augment_names}
    )
    action_repeat: int | None = None  # env steps per agent step; unset: the task's PlaNet value, else 1
    lr: float | None = None  # learning rate; unset: the algorithm's rate for the task (CURL cheetah 2e-4)
    batch_size: int | None = None  # transitions per gradient step; unset: the algorithm's (CURL 512)
    buffer_size: int | None = None  # replay capacity in transitions; unset: the algorithm's (100,000)
    init_agent_steps: int | None = None  # random-action agent steps before training; unset: the algorithm's
    image_size: int = 84  # network input side in pixels
    render_size: int | None = None  # rendered side; unset: image_size + the algorithm's margin (CURL 16)
    frame_stack: int = 3  # frames per observation
    episode_env_steps: int = 1000  # episode length in env steps
    feature_dim: int | None = None  # encoder output size; unset: the algorithm's (50)
    hidden_dim: int | None = None  # hidden width of the actor and critic MLPs; unset: the algorithm's (1024)
    num_filters: int | None = None  # channels of each conv layer; unset: the algorithm's (32)
    num_layers: int | None = None  # conv layers; unset: the algorithm's (4)
    eval_every_env_steps: int = 10_000  # env steps between evaluations (a multiple of episode_env_steps)
    eval_episodes: int = 10  # deterministic episodes per evaluation
    checkpoint_every_env_steps: int = 10_000  # env steps between checkpoints (a multiple of episode_env_steps)
    save_replay: bool = True  # store the replay buffer with each checkpoint (--resume continues the same run)
    video: bool = True  # write final_eval.gif of the first final evaluation episode
    video_size: int = 256  # side of the GIF frames (the task camera, independent of the network input)
    threads: int | None = None  # torch CPU threads; unset: torch's setting (OMP_NUM_THREADS)


#: Fields a resumed run may change: the budget, where it runs and what it writes besides the training.
CHANGEABLE_ON_RESUME = ("env_steps", "device", "threads", "save_replay", "video", "video_size")

#: Renamed flags that keep working, with a one-line notice (old flag -> field).
DEPRECATED_FLAGS = {
    "--steps": "env_steps",
    "--init-steps": "init_agent_steps",
    "--eval-every": "eval_every_env_steps",
    "--checkpoint-every": "checkpoint_every_env_steps",
    "--episode-length": "episode_env_steps",
    "--torch-threads": "threads",
}
#: ``config.json`` of earlier versions: old key -> field (0 meant "the preset" for these).
LEGACY_KEYS = {flag[2:].replace("-", "_"): name for flag, name in DEPRECATED_FLAGS.items()}
LEGACY_ZERO_IS_NONE = ("action_repeat", "lr", "render_size", "threads")

DEMO_PRESET: dict[str, Any] = {
    # A short CPU run (<= 10 minutes on 2 cores) that shows the pipeline end to end; not a paper setting.
    "env": "cartpole-swingup",
    "algo": "curl",
    "aux": "curl",
    "env_steps": 16_000,  # = 2,000 agent steps at action repeat 8
    "batch_size": 32,
    "image_size": 56,
    "render_size": 64,
    "hidden_dim": 256,
    "init_agent_steps": 250,
    "buffer_size": 10_000,
    "eval_every_env_steps": 4_000,
    "eval_episodes": 3,
    "checkpoint_every_env_steps": 8_000,
}
PRESETS = {"demo": DEMO_PRESET}

POSITIVE_FIELDS = (
    "env_steps",
    "action_repeat",
    "batch_size",
    "buffer_size",
    "image_size",
    "render_size",
    "frame_stack",
    "episode_env_steps",
    "feature_dim",
    "hidden_dim",
    "num_filters",
    "num_layers",
    "eval_every_env_steps",
    "eval_episodes",
    "checkpoint_every_env_steps",
    "video_size",
    "threads",
)


# --------------------------------------------------------------------------------------- command line
class _DeprecatedFlag(argparse.Action):
    """Store the value under the new field and print a one-line notice naming the new flag."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: str | None = None) -> None:
        sys.stderr.write(f"{parser.prog}: note: {option} is deprecated; use {flag_name(self.dest)} (same meaning)\n")
        setattr(namespace, self.dest, values)


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Train a pixel (CURL/RAD/DrQ/SAC-AE/pixel SAC) or state SAC agent on a DeepMind Control task. "
        "env steps are dm_control control steps (agent steps x action repeat), as in the CURL paper.",
    )
    parser.add_argument("--out", required=True, help="run folder (see the module docstring for its files)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a named configuration (demo: short CPU CURL run)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    parser.add_argument(
        "--resume-without-replay",
        action="store_true",
        help="with --resume: accept a checkpoint without a replay buffer (an empty buffer and init_agent_steps "
        "random steps again: not the run an uninterrupted one would have been; recorded in the run's files)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_dataclass_options(parser.add_argument_group("run settings (config.json)"), RunConfig)
    for old, name in DEPRECATED_FLAGS.items():  # every renamed field is an int
        parser.add_argument(
            old, dest=name, type=int, default=argparse.SUPPRESS, action=_DeprecatedFlag, help=argparse.SUPPRESS
        )
    return parser


# --------------------------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class RunPlan:
    """The resolved configuration and where each value came from."""

    config: RunConfig
    sources: dict[str, str]


def algorithm_class(cfg: RunConfig) -> Any:
    return ALGORITHMS[cfg.algo]


def is_pixel(cfg: RunConfig) -> bool:
    from curl_agents.algorithms.pixel_sac import PixelSAC

    return issubclass(algorithm_class(cfg), PixelSAC)


def allowed_aux(cfg: RunConfig) -> list[str]:
    """The objectives ``--algo`` accepts: its ``fixed_aux`` (RAD, SAC-AE), ``none`` for state SAC, else all."""
    if not is_pixel(cfg):
        return ["none"]
    fixed = algorithm_class(cfg).fixed_aux
    return [fixed] if fixed is not None else _aux_names()


def legacy_to_current(saved: dict[str, Any]) -> dict[str, Any]:
    """A ``config.json`` of an earlier version with the current field names (0 -> None where 0 meant auto)."""
    values = {LEGACY_KEYS.get(k, k): v for k, v in saved.items()}
    if any(k in saved for k in LEGACY_KEYS):
        for name in LEGACY_ZERO_IS_NONE:
            if values.get(name) == 0:
                values[name] = None
        if values.get("aux") == "none" and getattr(ALGORITHMS.get(values.get("algo")), "fixed_aux", None):
            values["aux"] = None  # recorded as "none", built with the algorithm's own objective
    return values


def plan_from_args(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> RunPlan:
    """Defaults < a resumed run's ``saved`` config < ``--preset`` < explicit flags; then validate and resolve."""
    names = {f.name for f in fields(RunConfig)}
    values = asdict(RunConfig())
    sources = dict.fromkeys(values, "default")
    if saved is not None:
        current = legacy_to_current(saved)
        saved_sources = current.get("sources", {}) if isinstance(current.get("sources"), dict) else {}
        for name in names & set(current):
            values[name] = current[name]
            sources[name] = saved_sources.get(name, "saved config")
    if args.preset:
        values.update(PRESETS[args.preset])
        sources.update(dict.fromkeys(PRESETS[args.preset], f"preset {args.preset}"))
    explicit = explicit_values(args, RunConfig)
    values.update(explicit)
    sources.update(dict.fromkeys(explicit, "flag"))
    return resolve(RunConfig(**values), sources)


def config_from_args(args: argparse.Namespace, saved: dict[str, Any] | None = None) -> RunConfig:
    """The resolved :class:`RunConfig` of a command line (see :func:`plan_from_args`)."""
    return plan_from_args(args, saved).config


def resolve(cfg: RunConfig, sources: dict[str, str] | None = None) -> RunPlan:
    """Validate ``cfg`` and replace every ``None`` by the value the run uses (raises :class:`UserError`)."""
    from curl_agents.algorithms.defaults import constructor_defaults, policy_settings, task_learning_rate
    from curl_agents.presets import PLANET_PRESETS

    sources = dict(sources or dict.fromkeys(asdict(cfg), "default"))
    _check_names(cfg)
    for name in POSITIVE_FIELDS:
        if getattr(cfg, name) is not None:
            _check_int(name, getattr(cfg, name), low=1)
    if cfg.init_agent_steps is not None:
        _check_int("init_agent_steps", cfg.init_agent_steps, low=0)
    _check_int("seed", cfg.seed, low=0)
    if cfg.lr is not None and not (isinstance(cfg.lr, (int, float)) and math.isfinite(cfg.lr) and cfg.lr > 0):
        raise UserError(f"--lr: got {cfg.lr!r}; allowed: a finite number > 0 (or leave it out for the preset)")

    cls = algorithm_class(cfg)
    pixel = is_pixel(cfg)
    constructor = constructor_defaults(cls)
    network = policy_settings(cls)
    if not pixel:  # SB3's MLP policy: net_arch [h, h]
        network = {"hidden_dim": network["net_arch"][0]}
    resolved: dict[str, Any] = {}

    def fill(name: str, value: Any, source: str) -> None:
        if getattr(cfg, name) is None:
            resolved[name] = value
            sources[name] = source

    preset = PLANET_PRESETS.get(cfg.env)
    if preset is not None:
        fill("action_repeat", preset.action_repeat, f"task preset: PlaNet action repeat of {cfg.env}")
    else:
        fill("action_repeat", 1, f"default: {cfg.env} has no PlaNet preset (curl_agents.presets)")
    task_rates = getattr(cls, "task_learning_rates", {})
    where = "task_learning_rates" if cfg.env in task_rates else "constructor default"
    fill("lr", task_learning_rate(cls, cfg.env), f"{cfg.algo} {where}")
    fill("batch_size", constructor["batch_size"], f"{cfg.algo} constructor default")
    fill("buffer_size", constructor["buffer_size"], f"{cfg.algo} constructor default")
    fill("init_agent_steps", constructor["learning_starts"], f"{cfg.algo} constructor default (learning_starts)")
    for name in ("feature_dim", "hidden_dim", "num_filters", "num_layers"):
        if name in network:
            fill(name, network[name], f"{cfg.algo} network default")
        elif getattr(cfg, name) is None:
            sources[name] = f"not used by {cfg.algo}"
    if pixel:
        from curl_agents.algorithms.defaults import render_size

        fill("render_size", render_size(cls, cfg.image_size), f"image_size + {cfg.algo} render_margin")
    else:
        sources["render_size"] = f"not used by {cfg.algo}"
    if cfg.aux is None:
        resolved["aux"] = cls.default_aux if pixel else "none"
        sources["aux"] = f"{cfg.algo} default objective"
    out = replace(cfg, **resolved)
    _check_aux(out)
    _check_cadence(out)
    return RunPlan(out, sources)


def resolve_runtime(plan: RunPlan) -> RunPlan:
    """Resolve ``device`` and ``precision`` on this machine (``auto`` -> what the run uses)."""
    from ssl_shared.device import get_device
    from ssl_shared.precision import resolve_precision

    cfg, sources = plan.config, dict(plan.sources)
    try:
        device = get_device(cfg.device)
    except ValueError as err:
        raise UserError(f"--device: {err}") from err
    precision = resolve_precision(cfg.precision, device)
    if precision == "bf16" and "precision" not in constructor_parameters(algorithm_class(cfg)):
        if cfg.precision == "bf16":
            raise UserError(f"--precision bf16: --algo {cfg.algo} trains in fp32 only; allowed: auto, fp32")
        precision = "fp32"
        sources["precision"] = f"auto: {cfg.algo} has no bf16 path"
    elif cfg.precision == "auto":
        sources["precision"] = f"auto on {device}"
    if cfg.device == "auto":
        sources["device"] = "auto"
    return RunPlan(replace(cfg, device=str(device), precision=precision), sources)


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{flag_name(name)}: got {value!r}; allowed: an integer >= {low}")


def _check_names(cfg: RunConfig) -> None:
    from curl_agents.envs import valid_task_names

    if cfg.algo not in ALGORITHMS:
        raise UserError(f"--algo: unknown value {cfg.algo!r}; allowed: {', '.join(ALGORITHMS)}")
    if cfg.aux is not None and cfg.aux not in _aux_names():
        raise UserError(f"--aux: unknown value {cfg.aux!r}; allowed: {', '.join(_aux_names())}")
    tasks = valid_task_names()
    if cfg.env not in tasks:
        raise UserError(f"--env: unknown task {cfg.env!r}; allowed: {', '.join(tasks)}")
    if not isinstance(cfg.aux_kwargs, dict):
        raise UserError(f"--aux-kwargs: got {cfg.aux_kwargs!r}; allowed: a JSON object")
    from curl_agents.looks import check_look

    check_look(cfg.look, flag="--look")


def _check_aux(cfg: RunConfig) -> None:
    """``--aux`` against ``--algo`` and ``--aux-kwargs`` against the objective's options, before building."""
    from curl_agents.objectives import aux_objective_options

    allowed = allowed_aux(cfg)
    if cfg.aux not in allowed:
        raise UserError(
            f"--aux {cfg.aux}: --algo {cfg.algo} takes only --aux {' | '.join(allowed)}; "
            "for another objective use --algo curl (random crops) or drq (shifts)"
        )
    options = {k: v for k, v in aux_objective_options(cfg.aux).items() if k not in ("lr", "weight")}
    unknown = sorted(set(cfg.aux_kwargs) - set(options))
    if unknown:
        allowed_keys = ", ".join(sorted(options)) or "none (the objective has no options)"
        raise UserError(f"--aux-kwargs: unknown keys {unknown} for --aux {cfg.aux}; allowed: {allowed_keys}")
    if cfg.aux == "ssl_method":
        _check_ssl_method(cfg.aux_kwargs)
    if cfg.color_augment != "none" and not is_pixel(cfg):
        raise UserError(
            f"--color-augment {cfg.color_augment}: --algo {cfg.algo} sees states, not pixels; allowed: none"
        )
    if cfg.compile_encoders and not is_pixel(cfg):
        raise UserError(f"--compile-encoders: --algo {cfg.algo} sees states and has no pixel encoder; drop the flag")
    if cfg.fused_encoder_step and cfg.aux == "none":
        raise UserError(
            f"--fused-encoder-step: --algo {cfg.algo} with --aux none has no auxiliary loss to fuse; "
            "allowed: an algorithm with an objective (e.g. --algo curl)"
        )
    if cfg.fused_encoder_step and cfg.aux_kwargs.get("official_double_step"):
        raise UserError(
            "--fused-encoder-step: cannot be combined with --aux-kwargs official_double_step "
            "(one encoder step per gradient step vs two)"
        )


def _check_ssl_method(options: dict[str, Any]) -> None:
    from ssl_shared.methods import METHODS
    from ssl_shared.methods.base import config_from_overrides

    image_only = sorted(name for name, cls in METHODS.items() if set(cls.required_inputs) <= {"image"})
    method = options.get("method")
    if method is None:
        raise UserError('--aux-kwargs: --aux ssl_method needs {"method": NAME}; allowed NAME: ' + ", ".join(image_only))
    if method not in METHODS:
        raise UserError(f"--aux-kwargs: unknown SSL method {method!r}; allowed: {', '.join(image_only)}")
    if method not in image_only:
        needs = sorted(set(METHODS[method].required_inputs) - {"image"})
        raise UserError(
            f"--aux-kwargs: SSL method {method!r} needs {needs}, which replay batches lack; "
            f"allowed: {', '.join(image_only)}"
        )
    method_options = options.get("options") or {}
    if not isinstance(method_options, dict):
        raise UserError(f"--aux-kwargs: 'options' of {method!r}: got {method_options!r}; allowed: a JSON object")
    try:  # the method's config dataclass checks the option names (and values, where it validates them)
        config_from_overrides(METHODS[method].config_class, method_options)
    except (TypeError, ValueError) as err:
        raise UserError(f"--aux-kwargs: 'options' of SSL method {method!r}: {err}") from err


def _check_cadence(cfg: RunConfig) -> None:
    for name in ("eval_every_env_steps", "checkpoint_every_env_steps"):
        if getattr(cfg, name) % cfg.episode_env_steps:
            raise UserError(
                f"{flag_name(name)}: got {getattr(cfg, name)}; allowed: a multiple of --episode-env-steps "
                f"({cfg.episode_env_steps}), so it falls on an episode boundary"
            )
    if cfg.episode_env_steps % cfg.action_repeat:
        raise UserError(
            f"--episode-env-steps: got {cfg.episode_env_steps}; allowed: a multiple of the action repeat "
            f"{cfg.action_repeat}"
        )
    if cfg.render_size is not None and cfg.render_size < cfg.image_size:
        raise UserError(f"--render-size: got {cfg.render_size}; allowed: >= --image-size {cfg.image_size}")
    if cfg.algo == "drq" and cfg.render_size != cfg.image_size:
        raise UserError(
            f"--render-size: got {cfg.render_size}; allowed for drq: equal to --image-size {cfg.image_size} "
            "(shifts keep the size)"
        )


def resolved_action_repeat(cfg: RunConfig) -> int:
    return cfg.action_repeat if cfg.action_repeat is not None else resolve(cfg).config.action_repeat


def resolved_render_size(cfg: RunConfig) -> int:
    return cfg.render_size if cfg.render_size is not None else resolve(cfg).config.render_size


def constructor_parameters(cls: type) -> set[str]:
    """Every keyword ``cls(...)`` names along its class hierarchy (what ``**kwargs`` forward to)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        names.update(
            p.name
            for p in inspect.signature(init).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )
    return names


def model_kwargs(cfg: RunConfig) -> dict[str, Any]:
    """Constructor arguments of ``algorithm_class(cfg)`` (besides policy, env, device) for a resolved ``cfg``;
    ``precision`` only where the algorithm's constructor takes it."""
    if any(getattr(cfg, name) is None for name in ("lr", "batch_size", "buffer_size", "init_agent_steps")):
        cfg = resolve(cfg).config
    cls = algorithm_class(cfg)
    kwargs: dict[str, Any] = dict(
        learning_rate=cfg.lr,
        buffer_size=cfg.buffer_size,
        learning_starts=cfg.init_agent_steps,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    if "precision" in constructor_parameters(cls) and cfg.precision != "auto":
        kwargs["precision"] = cfg.precision
    if cfg.fused_encoder_step:
        kwargs["fused_encoder_step"] = True
    if cfg.compile_encoders:
        kwargs["compile_encoders"] = True
    if cfg.color_augment != "none":
        kwargs["color_augment"] = cfg.color_augment
    if not is_pixel(cfg):
        return dict(kwargs, policy_kwargs={"net_arch": [cfg.hidden_dim, cfg.hidden_dim]})
    policy_kwargs = dict(
        feature_dim=cfg.feature_dim, hidden_dim=cfg.hidden_dim, num_filters=cfg.num_filters, num_layers=cfg.num_layers
    )
    kwargs.update(image_size=cfg.image_size, policy_kwargs=policy_kwargs)
    if cfg.aux != "none":
        kwargs.update(aux=cfg.aux, aux_kwargs=cfg.aux_kwargs, aux_lr=cfg.lr)
    elif cls.fixed_aux is None:
        kwargs.update(aux="none")
    return kwargs
