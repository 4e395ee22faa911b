"""How the grid runner drives each trainer: one small adapter per training command, in one registry.

An adapter says which module to run, where its command line comes from (the trainer's own argparse
parser: a grid setting ``batch_size`` becomes the flag ``--batch-size`` whose ``dest`` is that config
field, so the mapping follows the trainer when its flags change), which file a finished run writes last,
which setting is its budget and which field sets its thread count, and how far a running run is. Grid
settings are the trainer's config field names; a renamed field's old spelling (a deprecated alias such
as ``--steps`` for ``env_steps``) is refused with the new name, and options that only steer one launch
(``--out``, ``--resume``, the thread count, ...) are set by the runner, never by a grid file.

A run is resumable when it holds a :class:`ssl_shared.run_dir.CheckpointStore` checkpoint under
``checkpoints/`` (``latest.txt`` and ``step-*/`` folders). What each adapter assumes of its trainer, and
the one place to change when a trainer changes:

- ``curl_agents.train`` (flags from ``curl_agents.run_config.RunConfig``): finished when ``summary.json``
  exists (written after the final checkpoint); also resumable from an earlier version's
  ``checkpoints/latest/`` (the trainer adopts it); budget ``env_steps``, threads ``threads``; progress =
  the last ``env_step`` of ``eval.csv`` out of ``config.json``'s ``env_steps``; runs with ``--no-progress``.
- ``cut_translation.cli train`` (flags from ``TrainConfig`` and the model configs): finished training when
  ``summary.json`` exists, then the cell runs ``python -m cut_translation.cli evaluate ... --json eval.json``
  and is done when ``eval.json`` exists; threads ``threads``; progress = ``losses.csv`` iterations out of
  ``config.json``'s ``total_iters``. An earlier version's ``checkpoints/latest.pt`` is not resumable.
- ``ssl_shared.train`` (flags from ``TrainerConfig``): finished when ``probe.json`` exists; budget ``steps``
  (none with ``probe_only``, the random-init baseline); threads ``threads``; progress = the last ``step``
  of ``train.csv``.

Every trainer takes ``--out FOLDER`` and ``--resume`` and refuses to resume a finished run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssl_shared.cli import flag_name
from ssl_shared.errors import UserError
from ssl_shared.run_dir import CheckpointStore

RUNNER_SET = ("out", "resume")  # set by the runner for every cell


@dataclass(frozen=True)
class Trainer:
    """One training command as the runner sees it (see the module docstring for each instance)."""

    name: str
    command: tuple[str, ...]  # after the Python executable, e.g. ("-m", "cut_translation.cli", "train")
    parser: Callable[[], argparse.ArgumentParser]
    completion_file: str  # the trainer's last write of a finished run
    budget_field: str | None
    unit: str  # what the progress counts
    report_kind: str  # "rl" | "translation" | "probe"
    data_files: tuple[str, ...]  # per-run files a report copies into experiments/results
    progress: Callable[[Path], tuple[int | None, int | None]]  # (done, total) read from the run folder
    thread_field: str | None = None
    extra_flags: tuple[str, ...] = ()  # passed to every run (no progress bars in the logs)
    launch_options: tuple[str, ...] = ()  # flags of one launch, not settings of the run (refused in grid files)
    resume_markers: tuple[str, ...] = ()  # besides a CheckpointStore: paths of an older layout the trainer resumes
    finish: Callable[[dict[str, Any], Path, int | None], list[str]] | None = None  # command run after training
    finish_file: str | None = None  # what ``finish`` writes
    wall_time: tuple[str, str] | None = None  # (file, key) of a finished run's training wall time in seconds

    # ------------------------------------------------------------------------------------- flags

    def actions(self) -> dict[str, argparse.Action]:
        """The trainer's flags by config field: ``--field-name`` for field ``field_name`` (aliases left out)."""
        actions: dict[str, argparse.Action] = {}
        for action in self.parser()._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue  # --help, or a hidden (deprecated) spelling of a field
            if flag_name(action.dest) not in action.option_strings:
                continue  # an alias stored under another name (scv-ssl-train's --bf16)
            actions.setdefault(action.dest, action)
        return actions

    def runner_set(self) -> set[str]:
        """Fields the runner sets on every command line: ``--out``, ``--resume``, threads and the extra flags."""
        extra = {flag[2:].replace("-", "_") for flag in self.extra_flags}
        return {*RUNNER_SET, *extra, *([self.thread_field] if self.thread_field else [])}

    def dest(self, name: str, actions: dict[str, argparse.Action] | None = None) -> str:
        """The config field a grid setting names; anything else is a one-line UserError saying what is allowed."""
        actions = self.actions() if actions is None else actions
        if name in actions and name not in self.launch_options:
            return name
        allowed = ", ".join(sorted(d for d in actions if d not in self.runner_set() and d not in self.launch_options))
        renamed = [a.dest for a in self.parser()._actions
                   if flag_name(name) in a.option_strings and a.dest != name and a.dest in actions]  # fmt: skip
        if renamed:
            raise UserError(f"setting {name!r}: {flag_name(name)} is an old name of {self.name}'s {renamed[0]!r}; "
                            f"name the field {renamed[0]!r}")  # fmt: skip
        if name in self.launch_options:
            raise UserError(f"setting {name!r}: {flag_name(name)} is a launch option of {self.name}, not a setting "
                            f"of the run; allowed: {allowed}")  # fmt: skip
        raise UserError(f"setting {name!r} is not a config field of {self.name}; allowed: {allowed}")

    def flags(self, settings: dict[str, Any]) -> list[str]:
        """The command-line flags for ``settings``, in the order the trainer's parser declares them."""
        actions = self.actions()
        by_dest: dict[str, Any] = {}
        for name, value in settings.items():
            dest = self.dest(name, actions)
            if dest in self.runner_set():
                raise UserError(f"setting {name!r} is set by the runner (--out, --resume, --threads-per-job)")
            by_dest[dest] = value
        argv: list[str] = []
        for dest, action in actions.items():
            if dest in by_dest:
                argv += _flag(action, by_dest[dest])
        return argv

    def check(self, settings: dict[str, Any], where: str) -> None:
        """Parse the flags of ``settings`` with the trainer's own parser; a rejected value is a UserError."""
        argv = [*self.flags(settings), "--out", "unused"]
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                self.parser().parse_args(argv)
        except SystemExit as err:
            message = " ".join(stderr.getvalue().strip().splitlines()[-1:]) or f"exit {err.code}"
            raise UserError(f"{where}: {self.name} rejects the flags {' '.join(argv[:-2])}: {message}") from None

    def thread_flags(self, threads: int | None) -> list[str]:
        if threads is None or self.thread_field is None:
            return []
        return _flag(self.actions()[self.thread_field], threads)

    # ------------------------------------------------------------------------------------- run state

    def trained(self, out: Path) -> bool:
        return (out / self.completion_file).is_file()

    def finished(self, out: Path) -> bool:
        """True when the run is complete: the trainer's completion file (and the finish step's, if any)."""
        return self.trained(out) and (self.finish_file is None or (out / self.finish_file).is_file())

    def has_checkpoint(self, out: Path) -> bool:
        """Whether ``--resume`` can continue the run in ``out``."""
        if CheckpointStore(out / "checkpoints").latest() is not None:
            return True
        return any((out / marker).exists() for marker in self.resume_markers)

    def commands(self, settings: dict[str, Any], out: Path, threads: int | None) -> tuple[list[list[str]], bool]:
        """The commands that bring an unfinished run to done, and whether training resumes a checkpoint."""
        commands, resume = [], False
        if not self.trained(out):
            resume = self.has_checkpoint(out)
            commands.append(
                [sys.executable, *self.command, *self.flags(settings), *self.thread_flags(threads),
                 *self.extra_flags, "--out", str(out), *(["--resume"] if resume else [])]
            )  # fmt: skip
        if self.finish is not None:
            commands.append(self.finish(settings, out, threads))
        return commands, resume


def _flag(action: argparse.Action, value: Any) -> list[str]:
    """Command-line words that make ``action`` parse ``value``."""
    flag = action.option_strings[0]
    if isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise UserError(f"setting {action.dest!r}: got {value!r}; allowed: true or false")
        positive = [s for s in action.option_strings if not s.startswith("--no-")]
        negative = [s for s in action.option_strings if s.startswith("--no-")]
        return [positive[0] if value else negative[0]]
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return [flag] if value == action.const else []
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        values = value if isinstance(value, (list, tuple)) else [value]
        return [flag, *(_word(v) for v in values)]
    if isinstance(value, (list, tuple)):
        return [flag, ",".join(_word(v) for v in value)]
    return [flag, _word(value)]


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


# ----------------------------------------------------------------------------------------- progress readers


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """Complete rows of a CSV log that may be half-written right now (a torn last line is skipped)."""
    if not path.is_file():
        return []
    text = path.read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return [r for r in csv.DictReader(io.StringIO(text)) if None not in r.values()]


def _last(path: Path, column: str) -> int | None:
    values = [int(float(r[column])) for r in _csv_rows(path) if r.get(column) not in (None, "")]
    return max(values) if values else None


def _config(out: Path) -> dict[str, Any]:
    """The run's ``config.json`` (empty while it is not written yet or half-written)."""
    try:
        value = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _curl_progress(out: Path) -> tuple[int | None, int | None]:
    return _last(out / "eval.csv", "env_step"), _int_or_none(_config(out).get("env_steps"))


def _cut_progress(out: Path) -> tuple[int | None, int | None]:
    return _last(out / "losses.csv", "iteration"), _int_or_none(_config(out).get("total_iters"))


def _ssl_progress(out: Path) -> tuple[int | None, int | None]:
    config = _config(out)
    if config.get("probe_only"):
        return None, 0  # no training step: the probe is the whole run
    last = _last(out / "train.csv", "step")
    return (None if last is None else last + 1), _int_or_none(config.get("steps"))


# ----------------------------------------------------------------------------------------- parsers


def _curl_parser() -> argparse.ArgumentParser:
    from curl_agents.run_config import build_parser

    return build_parser()


def _cut_parser() -> argparse.ArgumentParser:
    from cut_translation.cli import build_train_parser

    return build_train_parser()


def _ssl_parser() -> argparse.ArgumentParser:
    from ssl_shared.train import build_parser

    return build_parser()


def _cut_evaluate(settings: dict[str, Any], out: Path, threads: int | None) -> list[str]:
    """Paired metrics (and FID/KID with Inception weights) of the trained generator on the test split."""
    command = [sys.executable, "-m", "cut_translation.cli", "evaluate", "--checkpoint", str(out),
               "--data", str(settings["data"]), "--json", str(out / "eval.json"),
               "--device", str(settings.get("device", "auto"))]  # fmt: skip
    if threads is not None:
        command += ["--threads", str(threads)]
    if settings.get("inception_weights"):
        command += ["--inception-weights", str(settings["inception_weights"])]
    return command


def _offline_probe_parser() -> argparse.ArgumentParser:
    from curl_agents.offline_probe import build_parser

    return build_parser()


TRAINERS: dict[str, Trainer] = {
    "curl_agents.train": Trainer(
        name="curl_agents.train",
        command=("-m", "curl_agents.train"),
        parser=_curl_parser,
        completion_file="summary.json",
        budget_field="env_steps",
        unit="env steps",
        report_kind="rl",
        data_files=("eval.csv", "config.json", "summary.json", "launches.json"),
        progress=_curl_progress,
        thread_field="threads",
        extra_flags=("--no-progress",),
        launch_options=("preset", "resume_without_replay"),
        resume_markers=("checkpoints/latest/model.zip",),
        wall_time=("summary.json", "wall_time_s"),
    ),
    "cut_translation.cli": Trainer(
        name="cut_translation.cli",
        command=("-m", "cut_translation.cli", "train"),
        parser=_cut_parser,
        completion_file="summary.json",
        budget_field=None,
        unit="iterations",
        report_kind="translation",
        data_files=("eval.json", "config.json", "summary.json", "launches.json"),
        progress=_cut_progress,
        thread_field="threads",
        finish=_cut_evaluate,
        finish_file="eval.json",
    ),
    "ssl_shared.train": Trainer(
        name="ssl_shared.train",
        command=("-m", "ssl_shared.train"),
        parser=_ssl_parser,
        completion_file="probe.json",
        budget_field="steps",
        unit="steps",
        report_kind="probe",
        data_files=("probe.json", "config.json", "launches.json"),
        progress=_ssl_progress,
        thread_field="threads",
        launch_options=("stop_after",),
    ),
    # auxiliary objectives trained offline, then probed: finished when ``probe.json`` exists; resumable from its
    # CheckpointStore; budget ``steps``; progress = the last ``step`` of ``train.csv``
    "curl_agents.offline_probe": Trainer(
        name="curl_agents.offline_probe",
        command=("-m", "curl_agents.offline_probe"),
        parser=_offline_probe_parser,
        completion_file="probe.json",
        budget_field="steps",
        unit="steps",
        report_kind="probe",
        data_files=("probe.json", "config.json", "launches.json"),
        progress=_ssl_progress,
        thread_field="threads",
        wall_time=("probe.json", "wall_time_s"),
    ),
}


def get_trainer(name: str, where: str = "grid file") -> Trainer:
    if name not in TRAINERS:
        raise UserError(f"{where}: trainer {name!r} is not known; allowed: {', '.join(sorted(TRAINERS))}")
    return TRAINERS[name]
