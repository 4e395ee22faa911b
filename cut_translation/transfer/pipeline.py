"""``scv-transfer`` (``python -m cut_translation.transfer``): zero-shot visual transfer of trained pixel agents.

Given agents trained in one look of a DeepMind Control task and a new look (``curl_agents.looks``), the
command trains an image translator new look -> training look on unpaired frames, without rewards and
without touching the agents, and measures what each agent keeps of its return::

    MUJOCO_GL=egl scv-transfer --agents runs/cartpole_s1 runs/cartpole_s2 runs/cartpole_s3 \\
        --target-look color_shift_1.0 --out runs/transfer_cartpole_cs10

Stages, each skipped when its outputs are complete (``--resume`` continues a stopped run; every stage
keeps its own state, the translator runs resume from their checkpoints):

1. ``frames/``: unpaired frames of both looks plus paired test states (:mod:`.frames`);
2. ``translators/<model>/``: one ``scv-cut-train`` run per ``--models`` entry (:mod:`.translators`);
3. ``samples/<model>.png|json``: grids ``target look | translated | training look`` of the same states and
   paired L1/PSNR against the training look;
4. ``eval/<condition>/<agent>.json``: deterministic episodes per agent in the training look, the target
   look, and the target look behind each translator (:mod:`.evaluation`); ``--baselines`` (agents trained
   with colour augmentation, e.g. ``PixelSAC(color_augment="random_conv")``) in both looks;
5. ``report.md``, ``returns.png``, ``results.json``, ``tb/`` (:mod:`.report`): means with 95% bootstrap
   intervals over agents and episodes and the share of the training-look return each condition keeps.

The run folder also holds ``config.json`` (this command's settings and the agents' resolved settings),
``launches.json`` (command, commit, versions and hardware of each launch) and ``stages.json`` (wall time
of each stage).

Placement: this command lives in ``cut_translation`` because it needs both the translators and the agents;
``cut_translation`` imports ``curl_agents`` (envs, looks, the frame-translation wrappers), never the reverse.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from curl_agents.looks import LOOK_NAMES, check_look
from cut_translation.models import MODEL_NAMES
from cut_translation.transfer.agents import Agent, check_same_task, load_policy, make_agent_env, resolve_agent
from cut_translation.transfer.evaluation import ConditionResult, evaluate_condition, evaluation_seeds
from cut_translation.transfer.frames import FrameSetSpec, collect_frames
from cut_translation.transfer.report import (
    TARGET_LOOK,
    TRAIN_LOOK,
    baseline_condition,
    plot_returns,
    sample_grid,
    summarize,
    translated_condition,
    write_markdown,
)
from cut_translation.transfer.translators import TranslatorPlan, crop_and_load_size, load_generator, train_translator
from ssl_shared.cli import (
    OneLineArgumentParser,
    add_dataclass_options,
    check_choice,
    check_positive,
    command,
    explicit_values,
)
from ssl_shared.errors import UserError
from ssl_shared.provenance import git_commit, hardware_line, package_versions, record_launch, relative_command
from ssl_shared.run_dir import atomic_write_json, check_resume_config

PROG = "scv-transfer"
#: Settings a resumed run may change: where it runs and what the report shows (the report is always redone).
CHANGEABLE_ON_RESUME = ("device", "threads", "bootstrap", "samples", "label")
#: Settings of the agents that must agree: they share one translator and one set of episodes.
SHARED_SETTINGS = ("env", "look", "render_size", "action_repeat", "frame_stack", "episode_length")
CODE_PATHS = ("curl_agents", "cut_translation", "ssl_shared")


AGENT_SETTINGS_HELP = "for model .zip agents: JSON with a run config.json's keys (env, algo, image_size, ...)"
TARGET_HELP = "the new look the agents are tested in (curl_agents.looks)"
OPTIONS_HELP = 'translator model options as JSON, e.g. {"ngf": 32, "n_blocks": 6} (scv-cut-train option names)'


@dataclass
class TransferConfig:
    """Settings of ``scv-transfer``; every field is a flag whose help is its trailing comment.

    Translator defaults are the CUT paper preset (Park et al. 2020, arXiv 2007.15651: batch 1, ResNet
    generator ngf 64 with 9 blocks, PatchGAN, lr 2e-4); ``--translator-options`` changes any model option.
    """

    agents: tuple[str, ...] = ()  # agent run folders (config.json + final_model.zip) or model .zip files
    agent_settings: dict = field(default_factory=dict, metadata={"help": AGENT_SETTINGS_HELP})
    target_look: str = field(default="color_shift_1.0", metadata={"help": TARGET_HELP, "choices": LOOK_NAMES})
    out: str = ""  # run folder
    models: tuple[str, ...] = ("cut",)  # translators to train and evaluate, of: cut fastcut cyclegan
    baselines: tuple[str, ...] = ()  # runs of colour-augmented agents, evaluated in both looks without a translator
    collect_policy: Literal["random", "agent"] = "random"  # actions while collecting frames (see frames.py)
    frames_per_look: int = 2000  # unpaired training frames per look
    test_pairs: int = 64  # states rendered in both looks (sample grids, paired L1/PSNR)
    iters: int = 4000  # translator iterations (the model's lr schedule is scaled to them)
    translator_batch_size: int = 1  # images per translator iteration (CUT: 1)
    translator_options: dict = field(default_factory=dict, metadata={"help": OPTIONS_HELP})
    load_size: int = 0  # translator training resize before the random crop; 0: render size x 286/256 (CUT's ratio)
    eval_episodes: int = 10  # deterministic episodes per agent and condition (same initial states everywhere)
    seed: int = 0  # seeds frame collection, translator training and the evaluation episodes
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N: translators and agents
    threads: int | None = None  # torch CPU threads
    bootstrap: int = 10_000  # bootstrap resamples of the 95% intervals
    samples: int = 8  # rows of the sample grids
    label: str = ""  # a line shown at the top of report.md (e.g. what the run is for)

    def __post_init__(self) -> None:
        self.agents, self.models, self.baselines = tuple(self.agents), tuple(self.models), tuple(self.baselines)
        if not self.agents:
            raise UserError("--agents: none given; allowed: one or more agent run folders or model zips")
        check_look(self.target_look, flag="--target-look")
        if not self.models:
            raise UserError(f"--models: none given; allowed: one or more of {', '.join(MODEL_NAMES)}")
        for model in self.models:
            check_choice("models", model, MODEL_NAMES)
        if len(set(self.models)) != len(self.models):
            raise UserError(f"--models: {' '.join(self.models)} names a model twice; allowed: each model once")
        check_choice("collect_policy", self.collect_policy, ("random", "agent"))
        for name in (
            "frames_per_look",
            "test_pairs",
            "iters",
            "translator_batch_size",
            "eval_episodes",
            "bootstrap",
            "samples",
        ):
            check_positive(name, getattr(self, name))
        check_positive("load_size", self.load_size, allow_zero=True)
        check_positive("seed", self.seed, allow_zero=True)
        if self.threads is not None:
            check_positive("threads", self.threads)
        if not self.out:
            raise UserError(
                "--out: required; allowed: a folder for the run (new, or the run to continue with --resume)"
            )


# ----------------------------------------------------------------------------------------------------- run folder


def prepare(config: TransferConfig, resume: bool) -> Path:
    """Check the run folder: a new run refuses one that holds a run, ``--resume`` needs one with equal settings."""
    out = Path(config.out)
    config_path = out / "config.json"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; allowed: a folder")
    if resume:
        if not config_path.is_file():
            raise UserError(
                f"--resume: {out} holds no scv-transfer run ({config_path} missing); start without --resume"
            )
        saved = json.loads(config_path.read_text())["config"]
        check_resume_config(
            saved, _json(asdict(config)), ignore=(*CHANGEABLE_ON_RESUME, "out"), source=str(config_path)
        )
    elif config_path.exists():
        raise UserError(
            f"--out {out} already holds a run ({config_path}); pass --resume to continue it or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _json(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


class StageClock:
    """Wall seconds per stage, summed over launches, in ``stages.json``."""

    def __init__(self, out: Path) -> None:
        self.path = out / "stages.json"
        self.seconds: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + seconds, 1)
        atomic_write_json(self.path, self.seconds)


# ----------------------------------------------------------------------------------------------------- stages


def resolve_device(name: str) -> str:
    from cut_translation.trainer import resolve_device as resolve

    return str(resolve(name))


def translator_plans(config: TransferConfig, out: Path, render_size: int) -> list[TranslatorPlan]:
    crop, load = crop_and_load_size(render_size, config.load_size)
    return [
        TranslatorPlan(
            model=model,
            data=out / "frames",
            out=out / "translators" / model,
            iters=config.iters,
            batch_size=config.translator_batch_size,
            crop_size=crop,
            load_size=load,
            seed=config.seed,
            options=dict(config.translator_options),
        )
        for model in config.models
    ]


def stage_samples(out: Path, plan: TranslatorPlan, device: str, rows: int) -> dict[str, Any]:
    """Sample grid and paired metrics of one trained translator on the test pairs (skipped when up to date)."""
    from cut_translation.cli import load_split
    from cut_translation.metrics import paired_metrics

    json_path = out / "samples" / f"{plan.model}.json"
    meta, generator = load_generator(plan.out, device)
    if json_path.is_file():
        saved = json.loads(json_path.read_text())
        if saved.get("iteration") == meta["iteration"] and saved.get("rows") == rows:
            return saved
    _, inputs = load_split(plan.data / "testA", None)
    _, truth = load_split(plan.data / "testB", None)
    with torch.no_grad():
        translated = torch.cat([generator(batch.to(device)).cpu() for batch in inputs.split(16)])
    grid = f"samples/{plan.model}.png"
    sample_grid(inputs[:rows], translated[:rows], truth[:rows], out / grid)
    result = {
        "model": plan.model,
        "iteration": meta["iteration"],
        "grid": grid,
        "rows": rows,
        "paired": paired_metrics(translated, truth, inputs),
    }
    atomic_write_json(json_path, result)
    return result


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")


def stage_evaluate(
    out: Path,
    config: TransferConfig,
    agents: Sequence[Agent],
    condition_looks: Sequence[tuple[str, str, str | None]],
    device: str,
    progress: bool,
) -> list[ConditionResult]:
    """Every (agent, condition) not yet evaluated with these settings; returns all results, in agent order."""
    from curl_agents.frame_translation import ModuleFrameTranslator, TranslateFrames

    seeds = evaluation_seeds(config.seed, config.eval_episodes)
    generators: dict[str, tuple[dict[str, Any], torch.nn.Module]] = {}
    results = []
    for index, agent in enumerate(agents):
        name = f"{index}-{agent.name}"
        model = None
        for condition, look, translator in condition_looks:
            path = out / "eval" / _slug(condition) / f"{_slug(name)}.json"
            if translator is not None and translator not in generators:
                generators[translator] = load_generator(out / "translators" / translator, device)
            key = {
                "agent": str(agent.model_path),
                "look": look,
                "seeds": seeds,
                "translator": None
                if translator is None
                else {"model": translator, "iteration": generators[translator][0]["iteration"]},
            }
            if path.is_file():
                saved = json.loads(path.read_text())
                if saved.get("key") == _json(key):
                    results.append(ConditionResult(**saved))
                    continue
            model = model if model is not None else load_policy(agent, device)
            env = make_agent_env(agent.settings, look, seed=config.seed)
            if translator is not None:
                env = TranslateFrames(env, ModuleFrameTranslator(generators[translator][1], device))
            result = evaluate_condition(condition, name, model, env, seeds, key, progress=progress)
            env.close()
            atomic_write_json(path, result.to_dict())
            results.append(ConditionResult(**_json(result.to_dict())))
    return results


def conditions(config: TransferConfig, train_look: str) -> list[tuple[str, str, str | None]]:
    """(condition, look, translator) of the agents: training look, target look, target look + each translator."""
    return [
        (TRAIN_LOOK, train_look, None),
        (TARGET_LOOK, config.target_look, None),
        *((translated_condition(m), config.target_look, m) for m in config.models),
    ]


def write_tensorboard(out: Path, rows: Sequence[dict[str, Any]], grids: Sequence[dict[str, Any]]) -> None:
    """``tb/``: each condition's mean return and share as scalars, the sample grids as images (rewritten)."""
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter

    shutil.rmtree(out / "tb", ignore_errors=True)
    writer = SummaryWriter(str(out / "tb"))
    try:
        for row in rows:
            tag = _slug(row["condition"])
            writer.add_scalar(f"return/{tag}", row["return"]["value"], 0)
            writer.add_scalar(f"share/{tag}", row["share"]["value"], 0)
        for grid in grids:
            image = np.asarray(Image.open(out / grid["grid"]).convert("RGB"))
            writer.add_image(f"samples/{grid['model']}", image, 0, dataformats="HWC")
    finally:
        writer.close()


# ----------------------------------------------------------------------------------------------------- the run


def run(
    config: TransferConfig, resume: bool = False, progress: bool = True, argv: Sequence[str] | None = None
) -> dict[str, Any]:
    """All stages (see the module docstring); returns ``results.json``'s content."""
    agents = [resolve_agent(entry, config.agent_settings) for entry in config.agents]
    baselines = [resolve_agent(entry, config.agent_settings, flag="--baselines") for entry in config.baselines]
    check_same_task(agents, "--agents", SHARED_SETTINGS)
    if baselines:
        check_same_task([agents[0], *baselines], "--baselines", ("env", "look"))
    settings = agents[0].settings
    if settings.look == config.target_look:
        raise UserError(f"--target-look {config.target_look}: the agents were trained in it; allowed: another look")
    out = prepare(config, resume)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    record_launch(out, argv, device=device)
    atomic_write_json(
        out / "config.json",
        {
            "config": _json(asdict(config)),
            "agents": [_json(asdict(a.settings)) | {"model": str(a.model_path)} for a in agents],
        },
    )
    clock = StageClock(out)

    start = time.time()
    torch.manual_seed(config.seed)
    spec = FrameSetSpec(
        settings=settings,
        target_look=config.target_look,
        frames_per_look=config.frames_per_look,
        test_pairs=config.test_pairs,
        policy=config.collect_policy,
        seed=config.seed,
        agent_models=tuple(str(a.model_path) for a in agents) if config.collect_policy == "agent" else (),
    )
    collect_frames(out / "frames", spec, agents, lambda agent: load_policy(agent, device), progress=progress)
    clock.add("frames", time.time() - start)

    plans = translator_plans(config, out, settings.render_size)
    summaries = {}
    for plan in plans:
        start = time.time()
        summaries[plan.model] = train_translator(plan, device, config.threads)
        clock.add(f"translator {plan.model}", time.time() - start)
    start = time.time()
    grids = [stage_samples(out, plan, device, config.samples) for plan in plans]
    clock.add("samples", time.time() - start)

    start = time.time()
    results = stage_evaluate(out, config, agents, conditions(config, settings.look), device, progress)
    names = [TRAIN_LOOK, TARGET_LOOK, *(translated_condition(m) for m in config.models)]
    if baselines:
        baseline_looks = [
            (baseline_condition(TRAIN_LOOK), settings.look, None),
            (baseline_condition(TARGET_LOOK), config.target_look, None),
        ]
        results += stage_evaluate(out, config, baselines, baseline_looks, device, progress)
        names += [c for c, _, _ in baseline_looks]
    clock.add("evaluation", time.time() - start)

    rows = summarize(results, names, config.bootstrap, config.seed)
    translators = [
        {
            **grid,
            "iterations": summaries[grid["model"]].get("iterations"),
            "wall_seconds": clock.seconds.get(f"translator {grid['model']}", 0.0),
        }
        for grid in grids
    ]
    info = {
        "label": config.label,
        "settings": {**asdict(settings), "train_look": settings.look, "target_look": config.target_look},
        "n_agents": len(agents),
        "episodes": config.eval_episodes,
        "bootstrap": config.bootstrap,
        "frames_per_look": config.frames_per_look,
        "collect_policy": config.collect_policy,
        "rows": rows,
        "translators": translators,
        "agents": [str(a.model_path) for a in agents] + [f"baseline {b.model_path}" for b in baselines],
        "seed": config.seed,
        "episode_seeds": evaluation_seeds(config.seed, config.eval_episodes),
        "stage_seconds": clock.seconds,
        "provenance": {
            "command": relative_command(argv),
            "git_commit": git_commit(paths=CODE_PATHS),
            "hardware": hardware_line(),
            "versions": package_versions(),
        },
        "config": _json(asdict(config)),
    }
    plot_returns(rows, out / "returns.png", f"{settings.env}: {settings.look} -> {config.target_look}")
    write_markdown(out / "report.md", info)
    write_tensorboard(out, rows, grids)
    atomic_write_json(out / "results.json", info)
    return info


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Zero-shot visual transfer: train a translator (new look -> training look) on unpaired frames and "
        "evaluate trained pixel agents behind it (needs MUJOCO_GL=egl).",
    )
    add_dataclass_options(parser, TransferConfig)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out (finished stages are skipped)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def saved_values(out: str) -> dict[str, Any]:
    """The settings of the run in ``out`` (for ``--resume``: options not given keep these values)."""
    path = Path(out) / "config.json"
    if not path.is_file():
        raise UserError(f"--resume: {Path(out)} holds no scv-transfer run ({path} missing); start without --resume")
    return json.loads(path.read_text())["config"]


@command(PROG)
def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    given = explicit_values(args, TransferConfig)
    if args.resume and given.get("out"):
        saved = saved_values(given["out"])
        check_resume_config(
            saved, _json(given), ignore=(*CHANGEABLE_ON_RESUME, "out"), source=f"{given['out']}/config.json"
        )
        given = {**saved, **given}
    config = TransferConfig(**given)
    info = run(config, resume=args.resume, progress=not args.no_progress, argv=None if argv is None else [PROG, *argv])
    for row in info["rows"]:
        r, s = row["return"], row["share"]
        print(
            f"{row['condition']}: return {r['value']:.1f} [{r['low']:.1f}, {r['high']:.1f}], "
            f"keeps {100 * s['value']:.0f}%"
        )
    print(f"{PROG}: report in {Path(config.out) / 'report.md'}")
