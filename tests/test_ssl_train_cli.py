"""``scv-ssl-train`` end to end: one-line user errors, the run folder, SIGKILL and resume, seeds, NaN losses.

Launches of the command run ``ssl_shared.train.main`` in processes forked from one driver interpreter
that has imported torch and the trainer once (:data:`DRIVER`): each launch is its own process, with its
own exit status, stderr and SIGKILL, without paying the interpreter start and torch import every time.
One test runs the real ``python -m ssl_shared.train`` for the module entry point.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import torch

from ssl_shared.cli import field_help, flag_name
from ssl_shared.run_dir import CheckpointStore
from ssl_shared.train import TrainerConfig, build_parser, config_from_args, main, train

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--image-size", "16", "--widths", "8", "16", "--feature-dim", "16", "--batch-size", "16",
    "--precision", "fp32", "--threads", "1", "--no-probe",
]  # fmt: skip

DRIVER = textwrap.dedent(
    """
    import json, os, signal, sys, traceback
    from pathlib import Path

    import sklearn.datasets  # noqa: F401  (what the trainer imports lazily, imported once for every launch)
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    import ssl_shared.methods  # noqa: F401
    import ssl_shared.run_dir as run_dir
    import ssl_shared.train as trainer


    def kill():
        os.kill(os.getpid(), signal.SIGKILL)


    def arm(hook):
        kind, at = hook.get("kind"), hook.get("at")
        if kind == "no_model":  # building a backbone ends the launch with status 97
            trainer.build_backbone = lambda *args, **kwargs: os._exit(97)
        elif kind == "step":  # killed as step `at` begins
            step = trainer.Trainer.step

            def killing_step(self):
                if self.step_count == at:
                    kill()
                return step(self)

            trainer.Trainer.step = killing_step
        elif kind == "checkpoint_files":  # killed after checkpoint `at` is written, before its folder is renamed
            rename = os.rename

            def killing_rename(src, dst):
                if Path(dst).name == f"step-{at:010d}":
                    kill()
                return rename(src, dst)

            os.rename = killing_rename
        elif kind == "checkpoint_pointer":  # killed after checkpoint `at` is complete, before latest.txt names it
            write = run_dir.atomic_write_text

            def killing_write(path, text):
                if Path(path).name == "latest.txt" and text.strip() == f"step-{at:010d}":
                    kill()
                return write(path, text)

            run_dir.atomic_write_text = killing_write
        elif kind == "csv_row":  # killed halfway through the train.csv row of step `at`
            append = run_dir.CsvLog.append

            def killing_append(self, row):
                if int(row["step"]) == at:
                    with self.path.open("a") as f:
                        f.write(f"{at},0.0")
                    kill()
                return append(self, row)

            run_dir.CsvLog.append = killing_append


    def left_behind(out):  # what a launch left in its run folder: checkpoint names, the pointer, train.csv
        folder, pointer, log = out / "checkpoints", out / "checkpoints" / "latest.txt", out / "train.csv"
        return {
            "checkpoints": sorted(os.listdir(folder)) if folder.is_dir() else [],
            "pointer": pointer.read_text().strip() if pointer.is_file() else None,
            "csv": log.read_text() if log.is_file() else "",
        }


    results = []
    for launch in json.loads(sys.argv[1]):
        pid = os.fork()
        if pid == 0:
            os.dup2(os.open(launch["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            arm(launch.get("hook", {}))
            try:  # what the interpreter does with main(): SystemExit's code, or a traceback and 1
                trainer.main(launch["argv"])
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # a forked child skips the interpreter's shutdown (it would copy the parent's heap)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        out = Path(launch["argv"][launch["argv"].index("--out") + 1]) if "--out" in launch["argv"] else None
        results.append([status, left_behind(out) if out is not None else {}])
    print(json.dumps(results))
    """
)


def launch_all(launches: list[dict], tmp_path: Path) -> list[tuple[int, str, dict]]:
    """Run each ``{"argv": [...], "hook": {...}}`` as a launch of ``scv-ssl-train``, one after the other;
    ``(exit status, stderr, what it left in its --out folder)`` for each."""
    for i, launch in enumerate(launches):
        launch["stderr"] = str(tmp_path / f"stderr-{i}.txt")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": "egl"}
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(launches)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout.strip().splitlines()[-1])
    return [(status, Path(launch["stderr"]).read_text(), left) for (status, left), launch in zip(results, launches)]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the SHA-256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def latest_state(out: Path) -> dict:
    return torch.load(CheckpointStore(out / "checkpoints").latest() / "checkpoint.pt", weights_only=False)


def tensorboard_scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    """``(step, value)`` of ``tag`` as TensorBoard shows it (purged events removed)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def tensorboard_restart(event_file: Path) -> int | None:
    """The step of the restart (``SessionLog.START``) an event file begins with, if any."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    for event in EventFileLoader(str(event_file)).Load():
        if event.HasField("session_log") and event.session_log.status == event.session_log.START:
            return event.step
        if event.HasField("summary"):
            return None
    return None


def csv_rows(out: Path) -> list[dict[str, str]]:
    with (out / "train.csv").open(newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory) -> Path:
    """A finished 2-step run (default precision and device, so config.json records what they resolved to)."""
    out = tmp_path_factory.mktemp("existing") / "run"
    sizes = dict(image_size=16, widths=(8, 16), feature_dim=16, batch_size=16)
    train(TrainerConfig(**sizes, steps=2, probe=False, threads=1, out=str(out)))
    return out


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """In-process runs set torch's thread count (--threads); other tests keep theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_config_json_records_the_resolved_settings(existing_run):
    saved = json.loads((existing_run / "config.json").read_text())
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if torch.cuda.is_available():
        pytest.skip("the CPU expectations below assume no CUDA device")
    # auto precision: bf16 exactly where the CPU has bf16 matrix instructions (AMX or AVX-512 BF16)
    assert saved["precision"] == ("bf16" if flags & {"amx_bf16", "avx512_bf16"} else "fp32")
    assert saved["device"] == "cpu" and saved["channels_last"] is False and saved["threads"] == 1
    assert saved["method_config"]["temperature"] == 0.5  # SimCLR's default, recorded with the run
    launches = json.loads((existing_run / "launches.json").read_text())
    assert len(launches) == 1 and launches[0]["start_step"] == 0 and "git_commit" in launches[0]


def _bad_input_cases(tmp: Path, existing: Path) -> list[tuple[list[str], list[str]]]:
    """``(argv, words the one-line error must contain)`` for every class of bad input."""
    a_file = tmp / "a-file.txt"
    a_file.write_text("not a folder")
    truncated = tmp / "truncated"
    shutil.copytree(existing, truncated)
    ckpt = CheckpointStore(truncated / "checkpoints").latest() / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    new = [*TINY, "--out", str(tmp / "new")]  # a new run with valid flags but the one under test
    return [
        ([*new, "--method", "rotnet"], ["--method", "'rotnet'", "rotation"]),
        ([*new, "--backbone", "vgg16"], ["--backbone", "'vgg16'", "resnet18"]),
        ([*new, "--optimizer", "adam"], ["--optimizer", "'adam'", "adamw"]),
        ([*new, "--precision", "fp16"], ["--precision", "'fp16'", "bf16"]),
        ([*new, "--data", "imagenet"], ["--data", "'imagenet'", "folder:PATH"]),
        ([*new, "--data", f"folder:{tmp / 'missing'}"], ["--data", "missing", "does not exist"]),
        ([*new, "--data", "cifar10:"], ["--data", "PATH"]),
        ([*new, "--device", "tpu"], ["--device", "'tpu'"]),
        ([*new, "--method-kwargs", "[1, 2]"], ["--method-kwargs", "JSON object"]),
        ([*new, "--method-kwargs", "{bad"], ["--method-kwargs", "not valid JSON"]),
        ([*new, "--method-kwargs", '{"tempreature": 0.1}'], ["--method-kwargs", "tempreature", "temperature"]),
        ([*new, "--method", "denoising_ae", "--method-kwargs", '{"corruption": "salt"}'], ["--method-kwargs", "salt"]),
        ([*new, "--steps", "0"], ["--steps", "got 0", ">= 1"]),
        ([*new, "--steps", "-5"], ["--steps", "got -5", ">= 1"]),
        ([*new, "--steps", "ten"], ["--steps", "'ten'"]),
        ([*new, "--log-every", "0"], ["--log-every", "got 0"]),
        ([*new, "--checkpoint-every", "-1"], ["--checkpoint-every", "got -1"]),
        ([*new, "--batch-size", "0"], ["--batch-size", "got 0"]),
        ([*new, "--image-size", "-16"], ["--image-size", "got -16"]),
        ([*new, "--feature-dim", "0"], ["--feature-dim", "got 0"]),
        ([*new, "--widths", "8", "0"], ["--widths", "[8, 0]"]),
        ([*new, "--sequence-length", "0"], ["--sequence-length", "got 0"]),
        ([*new, "--warmup-steps", "-1"], ["--warmup-steps", "got -1", ">= 0"]),
        ([*new, "--num-workers", "-2"], ["--num-workers", "got -2"]),
        ([*new, "--threads", "0"], ["--threads", "got 0"]),
        ([*new, "--lr", "-0.1"], ["--lr", "-0.1", "> 0"]),
        ([*new, "--lr", "nan"], ["--lr", "nan"]),
        ([*new, "--weight-decay", "-1"], ["--weight-decay", "-1"]),
        ([*new, "--stop-after", "0"], ["--stop-after", "got 0"]),
        ([*new, "--stop-after", "--steps", "3"], ["--stop-after", "expected one argument"]),
        ([*new, "--batch-size", "--steps", "3"], ["--batch-size", "expected one argument"]),
        ([*new, "--batch-size", "5000"], ["--batch-size", "5000", "items"]),
        ([*new, "--method", "simclr", "--batch-size", "1"], ["--batch-size", "1", "at least 2"]),
        ([*new, "--method", "tcn"], ["--method", "tcn", "frames", "--sequence-length"]),
        ([*TINY, "--out", str(a_file)], ["--out", str(a_file), "file"]),
        ([*TINY, "--out", str(a_file / "run")], ["--out", str(a_file / "run"), "not writable"]),
        ([*TINY, "--out", str(existing)], ["--out", str(existing), "--resume"]),
        ([*TINY, "--out", str(tmp / "empty"), "--resume"], ["--resume", "no checkpoint", str(tmp / "empty")]),
        # resumes read the flags not given from config.json
        (["--out", str(truncated), "--resume"], [str(ckpt), "truncated"]),
        (["--out", str(existing), "--resume", "--lr", "0.5", "--widths", "8", "8"], ["lr", "0.5", "widths"]),
        (["--out", str(existing), "--resume", "--steps", "1"], ["--steps", "1", "step 2"]),
        # a finished run (probe.json) is not resumed again: no second probe, launch record or rewrite
        (["--out", str(existing), "--resume"], ["--resume", "finished", "probe.json", "larger --steps"]),
        ([*new, "--probe-only", "--no-probe"], ["--probe-only", "--no-probe"]),
    ]


def test_bad_inputs_stop_with_one_line_and_exit_2_before_any_model(existing_run, tmp_path):
    before = snapshot(existing_run)
    cases = _bad_input_cases(tmp_path, existing_run)
    launches = [{"argv": argv, "hook": {"kind": "no_model"}} for argv, _ in cases]  # building a backbone: 97
    for (argv, words), (status, stderr, _) in zip(cases, launch_all(launches, tmp_path)):
        assert status == 2, f"{argv}: exit status {status}, stderr {stderr!r}"
        assert stderr.count("\n") == 1 and stderr.startswith("scv-ssl-train: error: "), f"{argv}: {stderr!r}"
        assert "Traceback" not in stderr
        for word in words:
            assert word in stderr, f"{argv}: {word!r} not in {stderr!r}"
    assert snapshot(existing_run) == before  # refused launches neither log, record nor rewrite anything
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


def test_module_entry_point_reports_a_bad_flag_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "ssl_shared.train", "--steps", "0", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2
    assert result.stderr == "scv-ssl-train: error: --steps: got 0; allowed: an integer >= 1\n"
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------- SIGKILL


def test_sigkill_at_any_point_then_resume_equals_an_uninterrupted_run(tmp_path):
    """16 steps, a checkpoint every 4, a log row every step. The interrupted run is killed as step 6 begins,
    after checkpoint 8's files are written (before its folder is renamed), after checkpoint 12 is complete
    (before latest.txt names it) and in the middle of the row of step 14; each time ``--resume`` continues.
    At the end its weights and train.csv equal those of the uninterrupted run."""
    run = [*TINY, "--steps", "16", "--checkpoint-every", "4", "--log-every", "1", "--seed", "3"]
    reference, broken = tmp_path / "reference", tmp_path / "broken"
    resume = [*run, "--out", str(broken), "--resume"]
    launches = [
        {"argv": [*run, "--out", str(reference)]},
        {"argv": [*run, "--out", str(broken)], "hook": {"kind": "step", "at": 6}},
        {"argv": resume, "hook": {"kind": "checkpoint_files", "at": 8}},
        {"argv": resume, "hook": {"kind": "checkpoint_pointer", "at": 12}},
        {"argv": resume, "hook": {"kind": "csv_row", "at": 14}},
        {"argv": resume},
    ]
    results = launch_all(launches, tmp_path)
    assert [status for status, _, _ in results] == [0, -9, -9, -9, -9, 0], [stderr for _, stderr, _ in results]

    # What each kill left behind: the kill hit the window it names.
    killed_in_step, killed_in_files, killed_before_pointer, killed_in_row = (left for _, _, left in results[1:5])
    rows = [line.split(",")[0] for line in killed_in_step["csv"].splitlines()[1:]]
    assert rows == [str(s) for s in range(6)]  # each row was on disk as soon as it was logged
    assert killed_in_step["pointer"] == "step-0000000004"
    assert killed_in_files["pointer"] == "step-0000000004"
    assert any(name.startswith(".tmp-") for name in killed_in_files["checkpoints"])
    assert killed_before_pointer["pointer"] == "step-0000000008"
    assert "step-0000000012" in killed_before_pointer["checkpoints"]
    assert killed_in_row["pointer"] == "step-0000000012" and killed_in_row["csv"].endswith("\n14,0.0")

    expected, got = latest_state(reference), latest_state(broken)
    assert got["step"] == expected["step"] == 16
    for key, value in expected["method"].items():
        assert torch.equal(got["method"][key], value), f"{key} differs after kills and resumes"
    without_time = [{k: v for k, v in row.items() if k != "time_s"} for row in csv_rows(reference)]
    assert [int(row["step"]) for row in without_time] == list(range(16))
    assert [{k: v for k, v in row.items() if k != "time_s"} for row in csv_rows(broken)] == without_time
    # TensorBoard: each resumed launch marks a restart at its checkpoint's step (purge_step), so the events
    # a killed launch wrote past its checkpoint are dropped; what TensorBoard shows equals the reference.
    assert [tensorboard_restart(f) for f in sorted((broken / "tb").iterdir())] == [None, 4, 4, 12, 12]
    reference_losses = tensorboard_scalars(reference / "tb", "train/loss")
    assert [step for step, _ in reference_losses] == list(range(16))
    assert tensorboard_scalars(broken / "tb", "train/loss") == reference_losses
    checkpoints = sorted(p.name for p in (broken / "checkpoints").iterdir())
    assert checkpoints == ["latest.txt", "step-0000000016"]  # no leftovers of the killed writes
    saved = json.loads((broken / "config.json").read_text())
    assert saved["resume"] is False  # written by the first launch, never by a resume
    launches_json = json.loads((broken / "launches.json").read_text())
    assert [launch["start_step"] for launch in launches_json] == [0, 4, 4, 12, 12]


def test_extending_a_finished_run_removes_its_probe_until_the_new_end(existing_run, tmp_path):
    """probe.json marks a finished run: a larger --steps makes the run unfinished again until it gets there."""
    run = tmp_path / "extended"
    shutil.copytree(existing_run, run)
    resume = ["--out", str(run), "--resume", "--steps", "4", "--log-every", "1"]
    [(killed, _, _)] = launch_all([{"argv": resume, "hook": {"kind": "step", "at": 3}}], tmp_path)
    assert killed == -9 and not (run / "probe.json").exists()  # killed as step 3 began: not finished
    [(done, _, _)] = launch_all([{"argv": resume}], tmp_path)
    assert done == 0 and [int(row["step"]) for row in csv_rows(run)][-2:] == [2, 3]
    probe = json.loads((run / "probe.json").read_text())
    assert probe["step"] == 4 and latest_state(run)["step"] == 4
    assert [launch["start_step"] for launch in json.loads((run / "launches.json").read_text())] == [0, 2, 2]


def test_probe_only_probes_the_initial_encoder_without_a_step(tmp_path):
    """The random-init baseline: the probe of the weights a run starts from, and not one optimizer step."""
    from ssl_shared.train import Trainer, probe

    out = tmp_path / "random_init"
    flags = [*TINY, "--seed", "5", "--probe"]
    steps = []
    real_step = Trainer.step
    with mock.patch.object(Trainer, "step", lambda self: steps.append(self.step_count) or real_step(self)):
        main([*flags, "--probe-only", "--out", str(out)])
    assert steps == []
    results = json.loads((out / "probe.json").read_text())
    assert results["step"] == 0 and not (out / "train.csv").exists()
    assert json.loads((out / "config.json").read_text())["probe_only"] is True

    untrained = Trainer(config_from_args([*flags, "--out", str(tmp_path / "untrained")]))  # built, never fit
    saved = latest_state(out)
    assert saved["step"] == 0
    assert all(torch.equal(saved["method"][k], v) for k, v in untrained.method.state_dict().items())
    expected = probe(untrained.method.encoder(), untrained.config, untrained.device)
    assert {k: results[k] for k in expected} == pytest.approx(expected)
    assert set(expected) == {"linear_probe_accuracy", "knn_accuracy"}

    before = snapshot(out)
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(out), "--resume"])
    assert exit_info.value.code == 2 and snapshot(out) == before


# ----------------------------------------------------------------------------------------- seeds, NaN


def _weights_after(tmp_path: Path, name: str, *flags: str) -> dict[str, torch.Tensor]:
    out = tmp_path / name
    train(config_from_args([*TINY, "--steps", "3", "--out", str(out), *flags]))
    return latest_state(out)["method"]


def test_the_seed_determines_the_run(tmp_path):
    first = _weights_after(tmp_path, "a", "--seed", "7")
    torch.rand(5)  # whatever the process drew before does not matter
    again = _weights_after(tmp_path, "b", "--seed", "7", "--log-every", "1", "--checkpoint-every", "1")
    other = _weights_after(tmp_path, "c", "--seed", "8")
    assert all(torch.equal(first[k], again[k]) for k in first)
    trained = [k for k in first if k.endswith("weight") and first[k].is_floating_point()]
    assert any(not torch.equal(first[k], other[k]) for k in trained)


def test_non_finite_loss_exits_3_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    from ssl_shared.methods.simclr import SimCLR

    real = SimCLR.training_step

    def nan_at_step_3(self, batch, step=0, total_steps=1):
        loss, logs = real(self, batch, step, total_steps)
        return (loss * math.nan if step == 3 else loss), logs

    run = [*TINY, "--steps", "6", "--checkpoint-every", "2"]
    with mock.patch.object(SimCLR, "training_step", nan_at_step_3), pytest.raises(SystemExit) as exit_info:
        main([*run, "--out", str(tmp_path / "nan")])
    assert exit_info.value.code == 3
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        last_line
        == "scv-ssl-train: error: non-finite loss (nan) at step 3 (method simclr); stopped before the optimizer step"
    )
    kept = latest_state(tmp_path / "nan")
    assert kept["step"] == 2
    # the same schedule stopped after 2 steps, never having seen a NaN
    train(config_from_args([*run, "--stop-after", "2", "--out", str(tmp_path / "clean")]))
    clean = latest_state(tmp_path / "clean")
    assert all(torch.equal(kept["method"][k], v) for k, v in clean["method"].items())


# ----------------------------------------------------------------------------------------- flags


def test_every_config_field_is_a_flag_with_help():
    helps = field_help(TrainerConfig)
    text = build_parser().format_help()
    for name in TrainerConfig.__dataclass_fields__:
        assert helps.get(name), f"{name} has no help text"
        assert flag_name(name) in text
    assert config_from_args(["--threads", "3", "--stop-after", "4"]).threads == 3


@pytest.mark.parametrize("flag, precision", [("--bf16", "bf16"), ("--no-bf16", "fp32")])
def test_deprecated_bf16_flags_map_to_precision_with_a_notice(flag, precision, capsys):
    assert config_from_args([flag]).precision == precision
    assert capsys.readouterr().err == f"scv-ssl-train: {flag} is deprecated; use --precision {precision}\n"
