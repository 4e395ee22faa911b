"""Auxiliary objectives compared offline: ``python -m curl_agents.offline_probe --objective curl --steps 2000``.

Online comparisons (``experiments/grids/aux_comparison.toml``) cost hours of RL per run. This trainer
isolates the objective instead: it trains a pixel agent's encoder with one objective of
``curl_agents.objectives`` alone, on a fixed dataset of DMC transitions (``curl_agents.offline_data``),
then asks how much of the true state a linear read-out of the frozen encoder recovers.

One run:

1. the dataset ``--task/--policy/--episodes/...`` is loaded from ``--data-dir`` (generated once, cached);
2. the encoder is the pixel agents' (``ssl_shared.encoders.PixelEncoder``, CURL's 4 conv layers of 32
   filters, 50 features, SAC-AE/CURL initialisation), built first after ``torch.manual_seed(seed)``, so
   every objective of one seed starts from the same weights (and ``--objective none`` probes exactly
   them); its target encoder is an EMA copy, as the critic-target encoder is in the agents;
3. each step samples ``batch_size`` training transitions and makes CURL's views (``curl_agents.algorithms
   .CURL.make_views``: three independent random crops ``render_size -> image_size``, anchor and positive
   of ``o_t``, one of ``o_{t+1}``), the same for every objective; every ``target_update_interval`` steps
   the target encoder moves ``target <- tau * online + (1 - tau) * target`` and the objective's
   ``after_target_update()`` runs, before the objective's own optimizer step, in the order of
   ``PixelSAC._gradient_step``;
4. the probe: features of the centre crop of ``o_t`` (the acting view) from the frozen online encoder,
   ridge regression (``ssl_shared.evaluation.ridge_predictions``) fitted on the train episodes to the
   standardised state at ``t`` and at ``t + 1``, ``R^2`` per dimension on the test episodes and their
   mean (``linear_probe_r2`` and ``linear_probe_r2_next`` in ``probe.json``).

The critic's loss is absent on purpose: the comparison measures what each objective alone puts into the
encoder. Defaults: CURL's (Srinivas et al. 2020, arXiv 2004.04136): renders 100 cropped to 84, encoder
EMA tau 0.05 every 2 steps, Adam lr 1e-3; batch 128 (the CURL repository's command).

Run folder (``--out``), written through ``ssl_shared.run_dir`` as ``ssl_shared.train`` writes its own:
``config.json`` (settings plus the dataset's file and size), ``launches.json`` (command, commit, versions,
hardware per launch), ``train.csv`` (step, time_s, the objective's logs), ``checkpoints/`` (encoders,
objective, optimizers, every random generator: ``--resume`` continues bit for bit) and ``probe.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curl_agents.offline_data import POLICIES, SB3_ALGOS, Transitions, TransitionSpec, transition_dataset
from ssl_shared.cli import (
    OneLineArgumentParser,
    add_dataclass_options,
    check_choice,
    check_positive,
    command,
    explicit_values,
    one_line,
)
from ssl_shared.errors import NonFiniteLossError, UserError

CHECKPOINT_FILE = "checkpoint.pt"
RUN_MARKERS = ("config.json", "train.csv", "probe.json")


def _objective_names() -> list[str]:
    from curl_agents.objectives import AUX_OBJECTIVES

    return list(AUX_OBJECTIVES)


@dataclass
class OfflineProbeConfig:
    """Settings of one offline run; every field is a flag whose help is the trailing comment.

    Encoder, views and target defaults are CURL's (Srinivas, Laskin, Abbeel 2020, arXiv 2004.04136, appendix
    table; ``MishaLaskin/curl`` ``train.py``): 100 px renders cropped to 84, 4 conv layers of 32 filters, 50
    features, encoder EMA 0.05 every 2 steps, Adam lr 1e-3; batch 128 is the CURL repository's command.
    """

    objective: str = field(default="curl", metadata={"choices": _objective_names, "help": "auxiliary objective"})
    objective_kwargs: dict = field(default_factory=dict)  # JSON object of the objective's options
    task: str = "cartpole-swingup"  # dm_control task of the dataset
    policy: str = field(default="random", metadata={"choices": POLICIES, "help": "behaviour policy of the dataset"})
    policy_path: str | None = None  # stable-baselines3 model zip acting from the state (--policy sb3)
    policy_algo: str = field(default="state_sac", metadata={"choices": SB3_ALGOS, "help": "class of --policy-path"})
    smoothing: float = 0.8  # AR(1) coefficient of --policy smoothed_random
    episodes: int = 40  # episodes in the dataset (train + test)
    test_episodes: int = 8  # the last episodes, held out for the probe's R^2
    render_size: int = 100  # rendered frame side in px (CURL: 100)
    image_size: int = 84  # encoder input side: random crops in training, the centre crop in the probe
    frame_stack: int = 3  # frames per observation
    action_repeat: int | None = None  # env steps per agent step (default: the task preset)
    episode_length: int = 1000  # env steps per episode
    data_seed: int = 0  # seeds the dataset (initial states and actions); shared by the runs that compare
    data_dir: str = "data/offline_transitions"  # cache of generated datasets
    feature_dim: int = 50  # encoder output width (CURL: 50)
    num_layers: int = 4  # encoder conv layers (CURL: 4)
    num_filters: int = 32  # encoder conv channels (CURL: 32)
    steps: int = 2000  # objective optimizer steps (0: probe the initial encoder)
    batch_size: int = 128  # transitions per step
    lr: float = 1e-3  # the objective's Adam learning rate (CURL encoder lr)
    encoder_tau: float = 0.05  # EMA weight of the target encoder (CURL: 0.05)
    target_update_interval: int = 2  # steps between target EMA updates (CURL: 2)
    ridge: float = 1e-2  # probe ridge penalty, times the number of training transitions
    seed: int = 0  # seeds the encoder, the heads, the batches and the crops: one seed, one run
    device: str = "cpu"  # cpu | cuda | cuda:N | auto
    threads: int | None = None  # CPU threads of torch (torch.set_num_threads)
    out: str = "runs/offline_probe"  # run folder: config.json, launches.json, train.csv, checkpoints/, probe.json
    resume: bool = False  # continue the run in --out from its latest checkpoint
    log_every: int = 50  # steps between train.csv rows
    checkpoint_every: int = 500  # steps between checkpoints
    stop_after: int | None = None  # end this launch after N more steps (checkpointed); --resume continues

    def dataset_spec(self) -> TransitionSpec:
        return TransitionSpec(
            task=self.task,
            policy=self.policy,
            policy_path=self.policy_path,
            policy_algo=self.policy_algo,
            smoothing=self.smoothing,
            episodes=self.episodes,
            test_episodes=self.test_episodes,
            render_size=self.render_size,
            frame_stack=self.frame_stack,
            action_repeat=self.action_repeat,
            episode_length=self.episode_length,
            seed=self.data_seed,
        )


#: Fields a resumed run may change: they do not change what is computed (``steps`` extends it).
RESUME_MAY_CHANGE = ("steps", "stop_after", "device", "threads", "log_every", "checkpoint_every", "out", "resume",
                     "data_dir", "policy_path")  # fmt: skip
#: Fields ``--resume`` does not read from ``config.json``: they belong to this launch or machine.
PER_LAUNCH = ("stop_after", "device", "threads", "out", "resume")


def validate(config: OfflineProbeConfig) -> None:
    """Raise :class:`UserError` naming the flag for any value the run cannot use; builds nothing."""
    check_choice("objective", config.objective, _objective_names())
    for name in ("image_size", "feature_dim", "num_layers", "num_filters", "batch_size", "target_update_interval",
                 "log_every", "checkpoint_every"):  # fmt: skip
        check_positive(name, getattr(config, name))
    check_positive("steps", config.steps, allow_zero=True)
    for name in ("stop_after", "threads"):
        if getattr(config, name) is not None:
            check_positive(name, getattr(config, name))
    if config.objective == "none" and config.steps != 0:
        raise UserError(f"--steps {config.steps}: --objective none trains nothing; allowed: --steps 0")
    if config.image_size > config.render_size:
        raise UserError(f"--image-size {config.image_size}: allowed: at most --render-size {config.render_size}")
    for name, low, high in (("lr", 0.0, math.inf), ("encoder_tau", 0.0, 1.0), ("ridge", 0.0, math.inf)):
        value = getattr(config, name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not (low < value <= high if name == "lr" else low <= value <= high):
            raise UserError(f"--{name.replace('_', '-')}: got {value!r}; allowed: a number in [{low:g}, {high:g}]")
    if not isinstance(config.objective_kwargs, dict):
        raise UserError(f"--objective-kwargs: got {config.objective_kwargs!r}; allowed: a JSON object")
    config.dataset_spec().validate()


# ----------------------------------------------------------------------------------------- the run


class OfflineProbe:
    """One offline run: ``step`` (one objective step), ``save``/``resume`` (checkpoints), ``evaluate``
    (the probe) and ``fit`` (the loop with logs and checkpoints, then ``probe.json``)."""

    def __init__(self, config: OfflineProbeConfig) -> None:
        from ssl_shared.device import get_device
        from ssl_shared.run_dir import CheckpointStore, check_resume_config, prepare_run_dir

        validate(config)
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        try:
            self.device = get_device(config.device)
        except ValueError as err:
            raise UserError(f"--device {config.device!r}: {one_line(err)}") from err
        self.config = dataclasses.replace(config, device=str(self.device), threads=torch.get_num_threads())
        self.out = Path(config.out)
        self.store = CheckpointStore(self.out / "checkpoints")
        prepare_run_dir(self.out, config.resume, self.store, RUN_MARKERS)
        if config.resume and (self.out / "config.json").is_file():
            saved = json.loads((self.out / "config.json").read_text())
            check_resume_config(
                saved, asdict(self.config), ignore=RESUME_MAY_CHANGE, source=str(self.out / "config.json")
            )

        self.dataset_path = transition_dataset(config.dataset_spec(), config.data_dir)
        self.data = Transitions.load(self.dataset_path)
        self.train_index = torch.from_numpy(self.data.split("train"))
        self.frames = torch.from_numpy(self.data.frames).to(self.device)
        self.obs_frames = torch.from_numpy(self.data.obs_frames).to(self.device)
        self.next_obs_frames = torch.from_numpy(self.data.next_obs_frames).to(self.device)
        self.action = torch.from_numpy(self.data.action).to(self.device)
        self.reward = torch.from_numpy(self.data.reward).to(self.device).unsqueeze(1)
        self.done = torch.from_numpy(self.data.done).to(self.device).unsqueeze(1)

        torch.manual_seed(config.seed)  # the encoder first: the same initial weights for every objective
        self.encoder, self.target_encoder = build_encoders(self.config, self.device)
        self.objective = self._build_objective()
        self.batch_generator = torch.Generator().manual_seed(config.seed)
        self.crop_generator = torch.Generator(device=self.device).manual_seed(_crop_seed(config.seed))
        self.step_count = 0
        self.elapsed_s = 0.0
        self._launch_t0: float | None = None
        self._saved_step: int | None = None
        if config.resume:
            self.resume()

    def _build_objective(self) -> Any:
        from curl_agents.objectives import make_aux_objective

        c = self.config
        try:
            return make_aux_objective(
                c.objective,
                self.encoder,
                self.target_encoder,
                int(self.action.shape[1]),
                lr=c.lr,
                **c.objective_kwargs,
            )
        except (TypeError, ValueError) as err:
            given = json.dumps(c.objective_kwargs)
            raise UserError(f"--objective {c.objective} --objective-kwargs {given}: {one_line(err)}") from err

    # --- one step ---------------------------------------------------------------------------------

    def sample(self) -> Any:
        """One :class:`~curl_agents.objectives.AuxBatch` of CURL's views of ``batch_size`` training transitions."""
        from curl_agents.objectives import AuxBatch

        c = self.config
        pick = torch.randint(len(self.train_index), (c.batch_size,), generator=self.batch_generator)
        index = self.train_index[pick].to(self.device)
        obs = self._stack(self.obs_frames[index])
        next_obs = self._stack(self.next_obs_frames[index])
        anchor, positive, next_view = curl_views(obs, next_obs, c.image_size, self.crop_generator)
        return AuxBatch(anchor, positive, next_view, self.action[index], self.reward[index], self.done[index])

    def _stack(self, frame_index: torch.Tensor) -> torch.Tensor:
        stack = self.frames[frame_index]  # (B, k, 3, S, S)
        return stack.reshape(stack.shape[0], -1, *stack.shape[-2:])

    def step(self) -> dict[str, float]:
        """Step ``step_count``: the target EMA (every ``target_update_interval`` steps), then the objective."""
        from ssl_shared.momentum import polyak_update

        c, s = self.config, self.step_count
        batch = self.sample()
        if s % c.target_update_interval == 0:
            polyak_update(self.encoder, self.target_encoder, c.encoder_tau)
            self.objective.after_target_update()
        try:
            logs = self.objective.update(batch)
        except FloatingPointError as err:
            raise NonFiniteLossError("loss", float("nan"), s, where=f"objective {c.objective}: {err}") from err
        self.step_count = s + 1
        return {k.removeprefix("aux/"): v for k, v in logs.items()}

    # --- checkpoints ------------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        objective = self.objective
        return {
            "step": self.step_count,
            "encoder": self.encoder.state_dict(),
            "target_encoder": self.target_encoder.state_dict(),
            "objective": objective.state_dict() if objective is not None else None,
            "optimizers": {n: getattr(objective, n).state_dict() for n in objective.optimizer_names()}
            if objective is not None
            else {},
            "rng": {
                "torch": torch.get_rng_state(),
                "batch": self.batch_generator.get_state(),
                "crop": self.crop_generator.get_state(),
            },
            "config": asdict(self.config),
            "elapsed_s": self.training_time(),
        }

    def save(self) -> None:
        with self.store.save(self.step_count) as folder:
            torch.save(self._state(), folder / CHECKPOINT_FILE)
        self._saved_step = self.step_count

    def resume(self) -> int:
        latest = self.store.latest()
        path = latest / CHECKPOINT_FILE
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to restore
            raise UserError(
                f"checkpoint {path} cannot be read ({type(err).__name__}); restore it or use another --out"
            ) from err
        if state["step"] > self.config.steps:
            raise UserError(f"--steps {self.config.steps}: the checkpoint is at step {state['step']}; allowed: >= it")
        self.encoder.load_state_dict(state["encoder"])
        self.target_encoder.load_state_dict(state["target_encoder"])
        if self.objective is not None:
            self.objective.load_state_dict(state["objective"])
            for name, value in state["optimizers"].items():
                getattr(self.objective, name).load_state_dict(value)
        torch.set_rng_state(state["rng"]["torch"].cpu())
        self.batch_generator.set_state(state["rng"]["batch"].cpu())
        self.crop_generator.set_state(state["rng"]["crop"].cpu())
        self.step_count = int(state["step"])
        self.elapsed_s = float(state["elapsed_s"])
        self._saved_step = self.step_count
        return self.step_count

    def training_time(self) -> float:
        running = time.perf_counter() - self._launch_t0 if self._launch_t0 is not None else 0.0
        return self.elapsed_s + running

    # --- the probe --------------------------------------------------------------------------------

    @torch.no_grad()
    def features(self, index: np.ndarray, batch_size: int = 256) -> torch.Tensor:
        """Frozen online-encoder features of the centre crop of ``o_t`` for the transitions ``index``."""
        from ssl_shared.augment.crop import center_crop

        was_training = self.encoder.training
        self.encoder.eval()
        out = []
        for start in range(0, len(index), batch_size):
            obs = self._stack(self.obs_frames[torch.from_numpy(index[start : start + batch_size]).to(self.device)])
            out.append(self.encoder(center_crop(obs, self.config.image_size).float()).double().cpu())
        self.encoder.train(was_training)
        return torch.cat(out)

    def evaluate(self) -> dict[str, Any]:
        """R^2 of the state at ``t`` and ``t + 1`` from the features of ``o_t`` (see the module docstring)."""
        train, test = self.data.split("train"), self.data.split("test")
        train_x, test_x = self.features(train), self.features(test)
        scores: dict[str, Any] = {}
        per_dim: dict[str, list[float | None]] = {}
        for key, name in (("linear_probe_r2", "state"), ("linear_probe_r2_next", "next_state")):
            values = getattr(self.data, name)
            mean, r2 = probe_r2(train_x, values[train], test_x, values[test], self.config.ridge)
            scores[key] = mean
            per_dim[name] = r2
        return {**scores, "r2_per_dimension": per_dim, "train_transitions": len(train), "test_transitions": len(test)}

    # --- the loop ---------------------------------------------------------------------------------

    def _start_launch(self) -> None:
        from ssl_shared.provenance import record_launch
        from ssl_shared.run_dir import atomic_write_json

        if self._saved_step is None:
            self.save()
        if not (self.out / "config.json").exists():
            meta = json.loads(self.dataset_path.with_suffix(".json").read_text())
            atomic_write_json(self.out / "config.json", {**asdict(self.config), "dataset": {
                "file": self.dataset_path.name, **meta}})  # fmt: skip
        record_launch(self.out, start_step=self.step_count)

    def fit(self) -> dict[str, Any]:
        """Train to ``steps`` (or ``stop_after`` more), then probe into ``probe.json``; returns the results."""
        from ssl_shared.run_dir import CsvLog, atomic_write_json

        c = self.config
        self._launch_t0 = time.perf_counter()
        self._start_launch()
        log = CsvLog(self.out / "train.csv")
        log.truncate_after(self.step_count - 1)
        end = c.steps if c.stop_after is None else min(c.steps, self.step_count + c.stop_after)
        logs: dict[str, float] = {}
        while self.step_count < end:
            s = self.step_count
            logs = self.step()
            if s % c.log_every == 0 or s == c.steps - 1:
                log.append({"step": s, "time_s": round(self.training_time(), 3), **logs})
            if self.step_count % c.checkpoint_every == 0:
                self.save()
        if self._saved_step != self.step_count:
            self.save()
        if self.step_count < c.steps:
            return logs
        results = {"objective": c.objective, "steps": self.step_count, **logs, "wall_time_s": self.training_time()}
        results.update(self.evaluate())
        atomic_write_json(self.out / "probe.json", results)
        return results


def build_encoders(config: OfflineProbeConfig, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The pixel agents' encoder (CURL/SAC-AE initialisation) and its frozen EMA copy."""
    from curl_agents.policies import init_weights
    from ssl_shared.encoders import PixelEncoder

    shape = (3 * config.frame_stack, config.image_size, config.image_size)
    encoder = PixelEncoder(shape, config.feature_dim, config.num_layers, config.num_filters).to(device)
    encoder.apply(init_weights)
    target = copy.deepcopy(encoder)
    target.requires_grad_(False)
    return encoder, target


def curl_views(
    obs: torch.Tensor, next_obs: torch.Tensor, size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CURL's three independent random crops, in the order ``CURL.make_views`` draws them: anchor and
    positive of ``obs``, one of ``next_obs``; float in ``[0, 255]``."""
    from ssl_shared.augment.crop import random_crop

    anchor = random_crop(obs, size, generator=generator).float()
    positive = random_crop(obs, size, generator=generator).float()
    next_view = random_crop(next_obs, size, generator=generator).float()
    return anchor, positive, next_view


def _crop_seed(seed: int) -> int:
    """The crop generator's seed: the pixel agents' augmentation seed for ``seed``."""
    from curl_agents.algorithms.pixel_sac import augmentation_seed

    return augmentation_seed(seed)


def probe_r2(
    train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray, ridge: float
) -> tuple[float, list[float | None]]:
    """Ridge from features to targets standardised with the training mean and std; test ``R^2`` averaged
    over the target dimensions and per dimension (``None`` where the test target is constant)."""
    from ssl_shared.evaluation import r2_per_dimension, ridge_predictions

    y_train, y_test = (
        torch.from_numpy(np.asarray(train_y, np.float64)),
        torch.from_numpy(np.asarray(test_y, np.float64)),
    )
    mean, std = y_train.mean(0), y_train.std(0).clamp_min(1e-12)
    predicted = ridge_predictions(train_x, (y_train - mean) / std, test_x, ridge)
    per_dim = r2_per_dimension((y_test - mean) / std, predicted)
    valid = ~torch.isnan(per_dim)
    if not valid.any():
        raise ValueError("every test target dimension is constant: R^2 is undefined")
    return float(per_dim[valid].mean()), [None if math.isnan(v) else float(v) for v in per_dim.tolist()]


# ----------------------------------------------------------------------------------------- command line


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog="python -m curl_agents.offline_probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shown = {f.name: getattr(OfflineProbeConfig(), f.name) for f in dataclasses.fields(OfflineProbeConfig)}
    shown.update(threads="torch's default", stop_after="run to --steps", action_repeat="the task preset")
    add_dataclass_options(parser, OfflineProbeConfig, defaults=shown)
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> OfflineProbeConfig:
    """Defaults < ``config.json`` of the run (with ``--resume``) < the flags given."""
    given = explicit_values(build_parser().parse_args(argv), OfflineProbeConfig)
    if given.get("resume"):
        saved_path = Path(given.get("out", OfflineProbeConfig.out)) / "config.json"
        if saved_path.is_file():
            saved = json.loads(saved_path.read_text())
            names = {f.name for f in dataclasses.fields(OfflineProbeConfig)}
            given = {**{k: v for k, v in saved.items() if k in names and k not in PER_LAUNCH}, **given}
    return OfflineProbeConfig(**given)


def run(config: OfflineProbeConfig) -> dict[str, Any]:
    return OfflineProbe(config).fit()


@command("python -m curl_agents.offline_probe")
def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering when the dataset is generated
    results = run(config_from_args(argv))
    print(json.dumps({k: v for k, v in results.items() if k != "r2_per_dimension"}, indent=2))


if __name__ == "__main__":
    main()
