"""The cut-* and dmc-restyle command lines: exit codes, one-line errors, options from the configs, SIGKILL + resume.

Bad inputs run as real processes: one runner subprocess imports the commands once and forks a child per
case, which calls the command exactly as a console script does (``sys.exit(main(argv))``) with its own
stderr; the child's exit status and stderr are what a user sees.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cut_translation.cli import build_train_parser, option_fields
from cut_translation.models import MODELS, make_config
from cut_translation.networks import DiscriminatorConfig, GeneratorConfig
from cut_translation.trainer import TrainConfig, Trainer
from ssl_shared.cli import explicit_values, field_help, flag_name

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--load-size",
    "36",
    "--crop-size",
    "32",
    "--ngf",
    "8",
    "--n-blocks",
    "2",
    "--ndf",
    "8",
    "--device",
    "cpu",
    "--threads",
    "1",
]
TINY_NCE = [*TINY, "--nce-layers", "0", "4", "8", "12", "13", "--num-patches", "32"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CUT_INCEPTION_WEIGHTS"}
    return {**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MUJOCO_GL": env.get("MUJOCO_GL", "egl")}


def _image(path: Path, seed: int, size: int = 36) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny dataset, broken variants of it, a finished 2-iteration run and damaged checkpoint files."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    for split, n in (("train", 4), ("test", 2)):
        for domain in "AB":
            for i in range(n):
                _image(data / f"{split}{domain}" / f"im{i}.png", seed=100 * i + ord(domain) + len(split))
    no_b = root / "no_b"
    shutil.copytree(data / "trainA", no_b / "trainA")
    empty_a = root / "empty_a"
    (empty_a / "trainA").mkdir(parents=True)
    shutil.copytree(data / "trainB", empty_a / "trainB")
    corrupt = root / "corrupt"
    shutil.copytree(data, corrupt)
    png = (corrupt / "trainB" / "im1.png").read_bytes()
    (corrupt / "trainB" / "im1.png").write_bytes(png[: len(png) // 2])
    no_test_b = root / "no_test_b"
    shutil.copytree(data, no_test_b)
    shutil.rmtree(no_test_b / "testB")
    (root / "a_file").write_text("not a folder")
    (root / "empty_dir").mkdir()

    run = root / "run"
    config = TrainConfig(
        data=str(data),
        out=str(run),
        iters=2,
        load_size=36,
        crop_size=32,
        device="cpu",
        log_every=1,
        sample_every=2,
        checkpoint_every=2,
        n_monitor=2,
        spread_threshold=0.0,  # an untrained 2-iteration model: no collapse warning
    )
    model = make_config(
        "cut",
        generator={"ngf": 8, "n_blocks": 2},
        discriminator={"ndf": 8},
        nce_layers=(0, 4, 8, 12, 13),
        num_patches=32,
    )
    Trainer(config, model).fit()
    step = run / "checkpoints" / "step-0000000002"
    state = (step / "state.pt").read_bytes()
    truncated_step = root / "truncated_step"
    shutil.copytree(step, truncated_step)
    (truncated_step / "state.pt").write_bytes(state[: len(state) // 2])
    bad_meta = root / "bad_meta"
    shutil.copytree(step, bad_meta)
    (bad_meta / "meta.json").write_text('{"model": "cut", ')
    truncated_run = root / "truncated_run"
    shutil.copytree(run, truncated_run)
    (truncated_run / "checkpoints" / "step-0000000002" / "state.pt").write_bytes(state[:1000])
    (root / "truncated.pt").write_bytes(state[: len(state) // 3])
    (root / "garbage.pt").write_bytes(np.random.default_rng(0).bytes(4096))  # fixed: a test must not vary
    torch.save({"weights": torch.zeros(3)}, root / "foreign.pt")
    (root / "stopped").mkdir()  # a run killed before its first checkpoint
    (root / "stopped" / "losses.csv").write_text("iteration,D\n1,0.5\n")
    # an earlier version's single-file checkpoint: RUN/checkpoints/latest.pt
    meta = json.loads((step / "meta.json").read_text())
    legacy = {
        "model_name": "cut",
        "model_config": meta["model_config"],
        "train_config": {"data_root": str(data)},
        "iteration": 2,
        **torch.load(step / "state.pt", weights_only=True),
    }
    (root / "legacy" / "checkpoints").mkdir(parents=True)
    torch.save(legacy, root / "legacy" / "checkpoints" / "latest.pt")
    return root


RUNNER = textwrap.dedent(
    """
    import io, json, os, signal, sys, traceback
    import torch, torch._dynamo, torch.utils.tensorboard  # noqa: F401  (imported once here, not in every child)
    import ssl_shared.run_dir as run_dir
    from cut_translation import cli, inception, restyle, trainer  # noqa: F401
    from ssl_shared.run_dir import CsvLog

    ENTRIES = {"scv-cut-train": cli.train_main, "scv-cut-translate": cli.translate_main,
               "scv-cut-evaluate": cli.evaluate_main, "scv-dmc-restyle": restyle.main}
    cli.build_train_parser()  # built once (it parses the config sources for the help texts), inherited by the children


    def die():
        os.kill(os.getpid(), signal.SIGKILL)


    def kill_at(point, at):
        if point == "training":  # in the middle of an iteration
            step = trainer.Trainer.step
            trainer.Trainer.step = lambda self, it: die() if it + 1 == at else step(self, it)
        elif point == "checkpoint":  # half of state.pt written
            save = trainer.write_checkpoint

            def write(store, iteration, meta, state):
                if iteration != at:
                    return save(store, iteration, meta, state)
                with store.save(iteration) as folder:
                    buffer = io.BytesIO()
                    torch.save(state, buffer)
                    (folder / "state.pt").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                    die()

            trainer.write_checkpoint = write
        elif point == "log":  # a torn losses.csv row
            append = CsvLog.append

            def torn(self, row):
                if self.path.name == "losses.csv" and row["iteration"] == at:
                    with self.path.open("a") as f:
                        f.write(f"{at},0.12")
                    die()
                append(self, row)

            CsvLog.append = torn
        elif point == "pointer":  # checkpoint folder renamed, latest.txt not yet replaced
            write_text = run_dir.atomic_write_text

            def pointer(path, text):
                if path.name == "latest.txt" and text.strip() == f"step-{at:010d}":
                    die()
                write_text(path, text)

            run_dir.atomic_write_text = pointer


    codes = []
    for prog, argv, errfile, point, at in json.load(open(sys.argv[1])):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.dup2(os.open(errfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            kill_at(point, at)
            try:
                sys.exit(ENTRIES[prog](argv))  # what the console script does
            except SystemExit as stop:
                code = stop.code
                if not isinstance(code, int):
                    if code is not None:
                        print(code, file=sys.stderr)
                    code = 0 if code is None else 1
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    print(json.dumps(codes))
    """
)


def _cases(w: Path) -> list[tuple[str, list[str], list[str]]]:
    """(command, argv, what stderr must name); ``NEW`` is replaced by a fresh output path per case."""
    data, run = str(w / "data"), str(w / "run")
    train = ["--data", data, "--out", "NEW", *TINY_NCE]
    return [
        ("scv-cut-train", [*train, "--model", "munit"], ["--model", "munit", "cut"]),
        ("scv-cut-train", [*train, "--gan-mode", "wgan"], ["--gan-mode", "wgan", "lsgan"]),
        ("scv-cut-train", [*train, "--iters", "0"], ["--iters", "0", ">= 1"]),
        ("scv-cut-train", [*train, "--iters", "-3"], ["--iters", "-3"]),
        ("scv-cut-train", [*train, "--iters", "ten"], ["--iters", "ten"]),
        ("scv-cut-train", [*train, "--batch-size", "0"], ["--batch-size", "0"]),
        ("scv-cut-train", [*train, "--batch-size", "10"], ["--batch-size", "10", "at most 4"]),
        ("scv-cut-train", [*train, "--load-size", "0"], ["--load-size", "0"]),
        ("scv-cut-train", [*train, "--crop-size", "40"], ["--crop-size 40", "--load-size 36"]),
        ("scv-cut-train", [*train, "--crop-size", "30"], ["--crop-size 30", "multiple of 4"]),
        ("scv-cut-train", [*train, "--log-every", "0"], ["--log-every", "0"]),
        ("scv-cut-train", [*train, "--sample-every", "-1"], ["--sample-every", "-1"]),
        ("scv-cut-train", [*train, "--checkpoint-every", "0"], ["--checkpoint-every", "0"]),
        ("scv-cut-train", [*train, "--eval-every", "-2"], ["--eval-every", "-2"]),
        ("scv-cut-train", [*train, "--eval-every", "5"], ["--eval-every", "--inception-weights"]),
        ("scv-cut-train", [*train, "--threads", "0"], ["--threads", "0"]),
        ("scv-cut-train", [*train, "--max-dataset-size", "0"], ["--max-dataset-size", "0"]),
        ("scv-cut-train", [*train, "--device", "tpu"], ["--device", "tpu"]),
        ("scv-cut-train", [*train, "--ngf", "0"], ["--ngf", "0"]),
        ("scv-cut-train", [*train, "--n-blocks", "0"], ["--n-blocks", "0"]),
        ("scv-cut-train", [*train, "--nce-layers", "0", "4", "40"], ["--nce-layers", "40", "0..13"]),
        ("scv-cut-train", [*train, "--lr", "0"], ["--lr", "0", "> 0"]),
        ("scv-cut-train", [*train, "--n-epochs", "0", "--n-epochs-decay", "0"], ["--n-epochs", "--n-epochs-decay"]),
        ("scv-cut-train", [*train, "--model", "cyclegan", "--lambda-nce", "2"], ["--lambda-nce", "cyclegan"]),
        ("scv-cut-train", [*train, "--pool-size", "3"], ["--pool-size", "--model cut", "cyclegan"]),
        ("scv-cut-train", [*train, "--bogus", "1"], ["--bogus"]),
        ("scv-cut-train", ["--data", data, *TINY_NCE], ["--out"]),
        ("scv-cut-train", ["--out", "NEW", *TINY_NCE], ["--data"]),
        ("scv-cut-train", ["--data", str(w / "nowhere"), "--out", "NEW", *TINY_NCE], ["nowhere"]),
        ("scv-cut-train", ["--data", str(w / "a_file"), "--out", "NEW", *TINY_NCE], ["a_file"]),
        ("scv-cut-train", ["--data", str(w / "no_b"), "--out", "NEW", *TINY_NCE], ["no_b/trainB"]),
        ("scv-cut-train", ["--data", str(w / "empty_a"), "--out", "NEW", *TINY_NCE], ["empty_a/trainA", "no images"]),
        ("scv-cut-train", ["--data", str(w / "corrupt"), "--out", "NEW", *TINY_NCE], ["corrupt/trainB/im1.png"]),
        ("scv-cut-train", ["--data", data, "--out", str(w / "a_file" / "run"), *TINY_NCE], ["--out", "a_file/run"]),
        ("scv-cut-train", ["--data", data, "--out", str(w / "a_file"), *TINY_NCE], ["--out", "a_file", "not a folder"]),
        ("scv-cut-train", ["--data", data, "--out", run, *TINY_NCE], ["--out", run, "--resume"]),
        ("scv-cut-train", ["--data", data, "--out", str(w / "stopped"), *TINY_NCE], ["stopped", "first checkpoint"]),
        ("scv-cut-train", ["--out", str(w / "empty_dir"), "--resume"], ["--resume", "no checkpoint", "empty_dir"]),
        ("scv-cut-train", ["--out", str(w / "stopped"), "--resume"], ["stopped", "first checkpoint"]),
        (
            "scv-cut-train",
            [
                "--out",
                run,
                "--resume",
                "--crop-size",
                "28",
                "--ngf",
                "16",
                "--seed",
                "1",
                "--lr",
                "1e-3",
                "--batch-size",
                "2",
            ],
            ["--crop-size: saved 32, now 28", "--ngf: saved 8, now 16", "--seed", "--lr", "--batch-size"],
        ),
        ("scv-cut-train", ["--out", run, "--resume", "--model", "cyclegan"], ["--model: saved 'cut', now 'cyclegan'"]),
        ("scv-cut-train", ["--out", run, "--resume", "--lambda-cycle", "3"], ["--lambda-cycle", "--model cut"]),
        ("scv-cut-train", ["--out", run, "--resume", "--iters", "1"], ["--iters 1", "iteration 2"]),
        ("scv-cut-train", ["--out", run, "--resume"], ["--resume", "finished", "summary.json", "larger --iters"]),
        ("scv-cut-train", ["--out", str(w / "truncated_run"), "--resume"], ["truncated_run", "state.pt"]),
        (
            "scv-cut-train",
            ["--out", str(w / "legacy"), "--resume"],
            ["legacy/checkpoints/latest.pt", "earlier version"],
        ),
        (
            "scv-cut-train",
            [*train, "--inception-weights", str(w / "absent.pth")],
            ["--inception-weights", "absent.pth"],
        ),
        (
            "scv-cut-train",
            [*train, "--inception-weights", str(w / "garbage.pt")],
            ["--inception-weights", "garbage.pt"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", str(w / "nowhere"), "--input", f"{data}/testA", "--out", "NEW"],
            ["--checkpoint", "nowhere"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", str(w / "empty_dir"), "--input", f"{data}/testA", "--out", "NEW"],
            ["--checkpoint", "empty_dir", "no checkpoint"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", str(w / "truncated.pt"), "--input", f"{data}/testA", "--out", "NEW"],
            ["--checkpoint", "truncated.pt"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", str(w / "garbage.pt"), "--input", f"{data}/testA", "--out", "NEW"],
            ["--checkpoint", "garbage.pt"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", str(w / "foreign.pt"), "--input", f"{data}/testA", "--out", "NEW"],
            ["--checkpoint", "foreign.pt", "not a scv-cut-train checkpoint"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", str(w / "truncated_step"), "--input", f"{data}/testA", "--out", "NEW"],
            ["--checkpoint", "truncated_step"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", str(w / "bad_meta"), "--input", f"{data}/testA", "--out", "NEW"],
            ["--checkpoint", "bad_meta/meta.json"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", run, "--input", str(w / "nowhere.png"), "--out", "NEW"],
            ["--input", "nowhere.png"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", run, "--input", str(w / "empty_dir"), "--out", "NEW"],
            ["--input", "empty_dir", "no images"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", run, "--input", str(w / "corrupt" / "trainB"), "--out", "NEW"],
            ["corrupt/trainB/im1.png"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", run, "--input", f"{data}/testA", "--out", str(w / "a_file")],
            ["--out", "a_file"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", run, "--input", f"{data}/testA", "--out", f"{data}/testA"],
            ["--out", "overwrite"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", run, "--input", f"{data}/testA", "--out", "NEW", "--size", "0"],
            ["--size", "0"],
        ),
        (
            "scv-cut-translate",
            ["--checkpoint", run, "--input", f"{data}/testA", "--out", "NEW", "--device", "gpu9"],
            ["--device", "gpu9"],
        ),
        ("scv-cut-translate", ["--checkpoint", run, "--out", "NEW"], ["--input"]),
        ("scv-cut-evaluate", ["--checkpoint", run, "--data", str(w / "nowhere")], ["--data", "nowhere"]),
        ("scv-cut-evaluate", ["--checkpoint", run, "--data", str(w / "no_test_b")], ["no_test_b/testB"]),
        ("scv-cut-evaluate", ["--checkpoint", run, "--data", data, "--phase", "val"], ["valA"]),
        (
            "scv-cut-evaluate",
            ["--checkpoint", str(w / "truncated.pt"), "--data", data],
            ["--checkpoint", "truncated.pt"],
        ),
        (
            "scv-cut-evaluate",
            ["--checkpoint", run, "--data", data, "--json", str(w / "a_file" / "r.json")],
            ["--json", "a_file"],
        ),
        (
            "scv-cut-evaluate",
            ["--checkpoint", run, "--data", data, "--save-images", str(w / "a_file")],
            ["--save-images", "a_file"],
        ),
        ("scv-cut-evaluate", ["--checkpoint", run, "--data", data, "--size", "-4"], ["--size", "-4"]),
        ("scv-cut-evaluate", ["--checkpoint", run, "--data", data, "--size", "8"], ["--size 11", "SSIM"]),
        (
            "scv-cut-evaluate",
            ["--checkpoint", run, "--data", data, "--inception-weights", str(w / "absent.pth")],
            ["--inception-weights", "absent.pth"],
        ),
        ("scv-dmc-restyle", ["--out", "NEW", "--size", "300"], ["--size", "300", "64"]),
        ("scv-dmc-restyle", ["--out", "NEW", "--size", "big"], ["--size", "big"]),
        ("scv-dmc-restyle", ["--out", "NEW", "--train", "0"], ["--train", "0"]),
        ("scv-dmc-restyle", ["--out", "NEW", "--tasks", "cheetah"], ["--tasks", "cheetah", "domain-task"]),
        ("scv-dmc-restyle", ["--out", "NEW", "--tasks", "cheetah-fly"], ["--tasks", "cheetah-fly"]),
        ("scv-dmc-restyle", ["--out", str(w / "a_file")], ["--out", "a_file"]),
    ]


def _run_cases(folder: Path, groups: dict[str, list[tuple]]) -> dict[str, list[tuple[int, str]]]:
    """Run each ``(command, argv[, kill point, iteration])`` of every group in a child process of one runner;
    per group the (exit status, stderr) of each. ``NEW`` in argv becomes ``folder/<group><k>``."""
    jobs, sizes = [], {}
    for group, cases in groups.items():
        sizes[group] = len(cases)
        for k, (prog, argv, *kill) in enumerate(cases):
            argv = [str(folder / f"{group}{k}") if a == "NEW" else a for a in argv]
            point, at = kill or (None, 0)
            jobs.append((prog, argv, str(folder / f"stderr-{group}{k}.txt"), point, at))
    (folder / "cases.json").write_text(json.dumps(jobs))
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(folder / "cases.json")],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=folder,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    outcomes = [(code, Path(job[2]).read_text()) for code, job in zip(codes, jobs)]
    grouped, start = {}, 0
    for group, size in sizes.items():
        grouped[group] = outcomes[start : start + size]
        start += size
    return grouped


KILL_FLAGS = ["--iters", "8", "--log-every", "1", "--sample-every", "4", "--checkpoint-every", "2", "--seed", "4"]


@pytest.fixture(scope="module")
def ran(world, tmp_path_factory):
    """Every command-line case of this module, run by one runner: bad inputs, successes, the SIGKILL chain."""
    folder = tmp_path_factory.mktemp("runs")
    data, run = str(world / "data"), str(world / "run")
    full, killed = folder / "full", folder / "killed"
    resume = ["--out", str(killed), "--resume"]  # a plain resume: every other option keeps its saved value
    groups = {
        "bad": [(prog, argv) for prog, argv, _ in _cases(world)],
        "ok": [
            ("scv-cut-train", ["--data", data, "--out", "NEW", "--iters", "2", *TINY_NCE]),
            ("scv-cut-translate", ["--checkpoint", run, "--input", f"{data}/testA", "--out", "NEW"]),
            ("scv-cut-translate", ["--checkpoint", str(world / "legacy"), "--input", f"{data}/testA", "--out", "NEW"]),
            ("scv-cut-evaluate", ["--checkpoint", run, "--data", data, "--json", str(folder / "e.json")]),
        ],
        "kill": [
            ("scv-cut-train", ["--data", data, "--out", str(full), *KILL_FLAGS, *TINY_NCE]),
            ("scv-cut-train", ["--data", data, "--out", str(killed), *KILL_FLAGS, *TINY_NCE], "training", 3),
            ("scv-cut-train", resume, "checkpoint", 4),  # killed half-way through writing the checkpoint at 4
            ("scv-cut-train", resume, "log", 5),  # killed while writing the losses.csv row of iteration 5
            ("scv-cut-train", resume, "pointer", 6),  # killed after the checkpoint at 6, before latest.txt names it
            ("scv-cut-train", resume),  # runs to the end
        ],
        "extend": [  # a finished 2-iteration run extended to 4 iterations, killed during iteration 3
            ("scv-cut-train", ["--data", data, "--out", str(folder / "extended"), "--iters", "2", *TINY_NCE]),
            ("scv-cut-train", ["--out", str(folder / "extended"), "--resume", "--iters", "4"], "training", 3),
        ],
    }
    return folder, _run_cases(folder, groups)


def test_bad_inputs_exit_2_with_one_line_naming_the_flag_or_file(world, ran):
    folder, outcomes = ran
    failures = []
    for (prog, argv, expected), (code, err) in zip(_cases(world), outcomes["bad"]):
        ok = (
            code == 2
            and err.count("\n") == 1
            and err.startswith(f"{prog}: error: ")
            and "Traceback" not in err
            and all(text in err for text in expected)
        )
        if not ok:
            failures.append(f"{prog} {' '.join(argv)} -> exit {code}: {err!r}")
    assert not failures, "\n".join(failures)
    # refused new runs leave no empty run folder behind, and the existing run is untouched
    assert not list(folder.glob("bad*"))
    assert (world / "run" / "checkpoints" / "latest.txt").read_text().strip() == "step-0000000002"
    assert len(json.loads((world / "run" / "launches.json").read_text())) == 1  # no refused launch was recorded
    assert [r["iteration"] for r in csv.DictReader((world / "run" / "losses.csv").open())] == ["1", "2"]


def test_successful_commands_exit_0(ran):
    folder, outcomes = ran
    assert [code for code, _ in outcomes["ok"]] == [0, 0, 0, 0], [err[-2000:] for _, err in outcomes["ok"]]
    assert json.loads((folder / "ok0" / "summary.json").read_text())["iterations"] == 2
    assert sorted(p.name for p in (folder / "ok1").iterdir()) == ["im0.png", "im1.png"]
    # the earlier version's single-file checkpoint translates like the new layout (same weights)
    assert all((folder / "ok1" / n).read_bytes() == (folder / "ok2" / n).read_bytes() for n in ("im0.png", "im1.png"))
    assert json.loads((folder / "e.json").read_text())["iteration"] == 2


def test_extending_a_finished_run_removes_its_summary_until_the_new_end(ran):
    """summary.json marks a finished run: a larger --iters makes the run unfinished again until it gets there."""
    folder, outcomes = ran
    assert [code for code, _ in outcomes["extend"]] == [0, -signal.SIGKILL], [e[-2000:] for _, e in outcomes["extend"]]
    assert not (folder / "extended" / "summary.json").exists()
    assert (folder / "extended" / "checkpoints" / "latest.txt").read_text().strip() == "step-0000000002"


# --------------------------------------------------------------------------------------- options from configs


def test_every_config_field_is_a_flag_with_its_comment_as_help():
    parser = build_train_parser()
    flags = {s for action in parser._actions for s in action.option_strings}
    text = " ".join(parser.format_help().split())
    fixed = {"in_channels", "out_channels"}  # images are RGB
    classes = [TrainConfig, GeneratorConfig, DiscriminatorConfig] + [spec.config_class for spec in MODELS.values()]
    for cls in classes:
        helps = field_help(cls)
        for f in dataclasses.fields(cls):
            if f.name in fixed or f.name in ("generator", "discriminator"):
                continue
            assert flag_name(f.name) in flags, f"{cls.__name__}.{f.name} has no flag"
            assert " ".join(helps[f.name].split()) in text, f"{cls.__name__}.{f.name}: help text missing"


def test_readme_commands_parse_to_the_intended_settings():
    argv = (
        "--model cut --data data/dmc-restyle-64 --load-size 72 --crop-size 64 --iters 1000 --ngf 16 "
        "--n-blocks 6 --ndf 32 --n-epochs 1 --n-epochs-decay 0 --out runs/cut64 --resume --gan-mode vanilla "
        "--inception-weights w.pth"
    ).split()
    args = build_train_parser().parse_args(argv)
    assert args.resume is True
    assert explicit_values(args, TrainConfig) == {
        "model": "cut",
        "data": "data/dmc-restyle-64",
        "load_size": 72,
        "crop_size": 64,
        "iters": 1000,
        "out": "runs/cut64",
        "inception_weights": "w.pth",
    }
    assert (args.ngf, args.n_blocks, args.ndf, args.n_epochs, args.n_epochs_decay, args.gan_mode) == (
        16,
        6,
        32,
        1,
        0,
        "vanilla",
    )


def test_options_apply_to_the_models_whose_config_has_the_field():
    assert "lambda_nce" in option_fields(MODELS["fastcut"].config_class)
    assert "lambda_nce" not in option_fields(MODELS["cyclegan"].config_class)
    assert "pool_size" in option_fields(MODELS["cyclegan"].config_class)
    assert {"ngf", "ndf", "lr", "n_epochs"} <= option_fields(MODELS["cut"].config_class)
    assert not {"in_channels", "out_channels", "generator"} & option_fields(MODELS["cut"].config_class)


# --------------------------------------------------------------------------------------- SIGKILL and resume


def test_sigkill_at_any_point_then_resume_equals_uninterrupted_run(ran):
    """Killed during iteration 3, while writing the checkpoint at 4, while writing the losses.csv row of 5, and
    between the checkpoint at 6 and its pointer; each time resumed; then compared with an uninterrupted run."""
    folder, outcomes = ran
    full, out = folder / "full", folder / "killed"
    kill = -signal.SIGKILL
    codes = [code for code, _ in outcomes["kill"]]
    assert codes == [0, kill, kill, kill, kill, 0], [err[-2000:] for _, err in outcomes["kill"]]
    launches = json.loads((out / "launches.json").read_text())
    assert [launch["resumed_from"] for launch in launches] == [0, 2, 2, 4, 6]

    def weights(run: Path) -> dict:
        latest = (run / "checkpoints" / "latest.txt").read_text().strip()
        assert latest == "step-0000000008"
        return torch.load(run / "checkpoints" / latest / "state.pt", weights_only=True)["model_state"]

    expected, got = weights(full), weights(out)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
    for log in ("losses.csv", "monitor.csv"):
        assert (out / log).read_text() == (full / log).read_text(), log
    assert [int(r["iteration"]) for r in csv.DictReader((out / "losses.csv").open())] == list(range(1, 9))
    # no leftovers of killed writes; one checkpoint kept
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["latest.txt", "step-0000000008"]
    assert not list(out.glob(".*.tmp"))
    # TensorBoard: every logged step once, after the purges of the resumed launches
    assert _tensorboard_steps(out / "tb", folder / "tb_sorted", "loss/G") == list(range(1, 9))


def _tensorboard_steps(folder: Path, scratch: Path, tag: str) -> list[int]:
    """Steps of scalar ``tag`` as TensorBoard shows them (purges applied), reading the launches' event files in
    the order they were started (file names order them by the second only)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = sorted(folder.iterdir(), key=lambda f: next(iter(EventFileLoader(str(f)).Load())).wall_time)
    scratch.mkdir()
    for k, f in enumerate(files):
        shutil.copy(f, scratch / f"events.out.tfevents.{k:04d}")
    events = EventAccumulator(str(scratch))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]
