"""The experiment grid layer: grid files, the trainers' flags, the runner, status and reports.

References are independent of the code under test: the trainers' own argparse parsers, the registries
(AUX_OBJECTIVES, METHODS), hand-written command lines and GPU assignments, numpy/scipy formulas for
the statistics, a stub trainer that records what it was given, and the bytes of a first report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grid_stub_trainer
import numpy as np
import pytest
from scipy import stats

from experiments.grid.cli import main as grid_main
from experiments.grid.launch import gpu_slots, submitit_parameters
from experiments.grid.spec import GRIDS_DIR, load_grid, parse_select, plan
from experiments.grid.state import Layout, cell_status, last_line
from experiments.grid.status import render
from experiments.grid.trainers import TRAINERS, Trainer, _csv_rows
from ssl_shared.errors import UserError

# Import submitit while the test modules are collected, not inside a test: importing it reconfigures logging,
# which closes absl's log handler, and inside a test that handler holds the test's captured stderr.
try:
    import submitit  # noqa: F401
except ImportError:
    pass

REPO = Path(__file__).resolve().parents[1]
EVAL_HEADER = "env_step,agent_step,mean_return,std_return,min_return,max_return,episodes,wall_time_s,note\n"


def write_grid(tmp_path: Path, text: str, name: str = "g") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------------------- grid files

GRID = """
trainer = "curl_agents.train"
[fixed]
batch_size = 512
eval_every_env_steps = 10000
[axes]
env = ["cartpole-swingup", "walker-walk"]
algo = ["curl", {label = "sac", algo = "state_sac", batch_size = 128, hidden_dim = 256}]
seed = [1, 2]
[[exclude]]
env = "walker-walk"
algo = "sac"
[protocols.cpu]
description = "small"
reduced = true
fixed = {eval_every_env_steps = 5000}
axes = {seed = [7]}
"""


def test_plan_crosses_axes_in_file_order_with_settings_precedence(tmp_path):
    grid = load_grid(write_grid(tmp_path, GRID))
    cells = plan(grid).cells
    # 2 envs x 2 algos x 2 seeds, minus walker-walk x sac (2 seeds)
    assert [c.cell_id for c in cells] == [
        "env=cartpole-swingup/algo=curl/seed=1", "env=cartpole-swingup/algo=curl/seed=2",
        "env=cartpole-swingup/algo=sac/seed=1", "env=cartpole-swingup/algo=sac/seed=2",
        "env=walker-walk/algo=curl/seed=1", "env=walker-walk/algo=curl/seed=2",
    ]  # fmt: skip
    assert cells[0].settings == {"batch_size": 512, "eval_every_env_steps": 10000, "env": "cartpole-swingup",
                                 "algo": "curl", "seed": 1}  # fmt: skip
    # a table value sets several fields and wins over [fixed]
    assert cells[2].settings["batch_size"] == 128 and cells[2].settings["algo"] == "state_sac"
    cpu = plan(grid, "cpu")
    assert cpu.name == "g_cpu" and cpu.reduced and "REDUCED" in cpu.banner()
    assert [c.labels["seed"] for c in cpu.cells] == ["7"] * 3
    assert {c.settings["eval_every_env_steps"] for c in cpu.cells} == {5000}
    assert not plan(grid).reduced and "REDUCED" not in plan(grid).banner()


def test_select_and_bad_grid_files_give_one_line_user_errors(tmp_path):
    grid = load_grid(write_grid(tmp_path, GRID))
    chosen = plan(grid, select=parse_select(["algo=curl", "seed=2"]))
    assert [c.cell_id for c in chosen.cells] == [
        "env=cartpole-swingup/algo=curl/seed=2",
        "env=walker-walk/algo=curl/seed=2",
    ]
    with pytest.raises(UserError, match="--select seed=9: not values of axis seed; allowed: 1, 2"):
        plan(grid, select={"seed": {"9"}})
    with pytest.raises(UserError, match="--protocol 'gpu'.*allowed: cpu"):
        plan(grid, "gpu")
    bad = {
        "path value": ('trainer = "x"\n[axes]\ndata = ["data/a"]\n', "write it as a table with a label"),
        "dead fixed": ('trainer = "x"\n[fixed]\nseed = 1\n[axes]\nseed = [1, 2]\n', "would never apply"),
        "unknown key": ('trainer = "x"\nseeds = 3\n[axes]\nseed = [1]\n', "unknown keys \\['seeds'\\]"),
        "duplicate label": ('trainer = "x"\n[axes]\nseed = [1, 1]\n', "appear twice"),
        "two axes set one field": ('trainer = "x"\n[axes]\na = [{label = "p", lr = 1}]\nb = [{label = "q", lr = 2}]\n',
                                   "both set 'lr'"),
    }  # fmt: skip
    for name, (text, message) in bad.items():
        with pytest.raises(UserError, match=message) as info:
            plan(load_grid(write_grid(tmp_path, text, name.replace(" ", "_"))))
        assert "\n" not in str(info.value)


def test_every_shipped_grid_parses_with_its_trainers_own_command_line():
    """Each cell's settings become flags that the trainer's parser accepts, under every protocol."""
    names = sorted(p.stem for p in GRIDS_DIR.glob("*.toml"))
    assert "smoke" in names and len(names) > 1
    for name in names:
        grid = load_grid(name)
        trainer = TRAINERS[grid.trainer]
        for protocol in [None, *grid.protocols]:
            for cell in plan(grid, protocol).cells:
                trainer.check(cell.settings, f"{name}/{protocol}/{cell.cell_id}")


def test_curl_table_grid_is_the_papers_table_and_its_cpu_protocol_varies_only_the_algorithm():
    from experiments.paper_scores import PLANET_TASKS

    grid = load_grid("curl_table")
    full = plan(grid)
    assert {c.settings["env"] for c in full.cells} == set(PLANET_TASKS)
    assert {c.settings["env_steps"] for c in full.cells} == {100_000, 500_000}
    assert {c.settings["algo"] for c in full.cells} == {"curl", "rad", "drq", "pixel_sac", "state_sac"}
    assert len(full.cells) == 6 * 2 * 5 * len(grid.axes[-1].values)
    assert all("action_repeat" not in c.settings and "lr" not in c.settings for c in full.cells)  # trainer presets
    cpu = {c.labels["algo"]: c.settings for c in plan(grid, "cpu").cells if c.labels["seed"] == "1"}
    curl, rad = dict(cpu["curl"]), dict(cpu["rad"])
    assert (curl.pop("algo"), rad.pop("algo")) == ("curl", "rad") and curl == rad and curl["batch_size"] == 32


def test_aux_comparison_grid_covers_every_objective_with_the_same_agent_and_budget():
    from curl_agents.objectives import AUX_OBJECTIVES

    the_plan = plan(load_grid("aux_comparison"))
    assert {c.settings["aux"] for c in the_plan.cells} == set(AUX_OBJECTIVES)
    common = [{k: v for k, v in c.settings.items() if k not in ("aux", "aux_kwargs", "seed")} for c in the_plan.cells]
    assert all(s == common[0] for s in common) and common[0]["algo"] == "curl"
    assert the_plan.grid.report.baseline == "none"


def test_ssl_probe_grid_covers_every_method_and_excludes_what_the_data_cannot_feed():
    from ssl_shared.methods import METHODS

    the_plan = plan(load_grid("ssl_probe"))
    for data in ("digits", "dmc"):
        methods = {c.settings["method"] for c in the_plan.cells if c.labels["data"] == data}
        needs = {"digits": "frames", "dmc": "label"}[data]
        assert methods == {m for m, cls in METHODS.items() if needs not in cls.required_inputs}
    for cell in the_plan.cells:
        temporal = "frames" in METHODS[cell.settings["method"]].required_inputs
        assert cell.settings.get("sequence_length", 1) == (8 if temporal else 1)
    random_init = [c for c in the_plan.cells if c.labels["method"] == "random_init"]
    assert random_init and all(c.settings.get("probe_only") is True for c in random_init)
    assert not any(c.settings.get("probe_only") for c in the_plan.cells if c.labels["method"] != "random_init")


def test_cut_table_models_share_every_setting_but_the_model():
    cells = plan(load_grid("cut_table")).cells
    rest = [{k: v for k, v in c.settings.items() if k != "model"} for c in cells if c.labels["seed"] == "0"]
    assert len(rest) == 3 and all(r == rest[0] for r in rest)


# ----------------------------------------------------------------------------------------- trainer adapters


def test_settings_become_the_curl_trainers_flags_and_parse_back_to_the_same_values():
    trainer = TRAINERS["curl_agents.train"]
    settings = {"seed": 3, "aux_kwargs": {"b": 1, "a": 2}, "save_replay": False, "video": False, "env_steps": 400,
                "env": "cartpole-swingup", "eval_every_env_steps": 200}  # fmt: skip
    flags = trainer.flags(settings)
    assert flags == ["--env", "cartpole-swingup", "--aux-kwargs", '{"a": 2, "b": 1}', "--env-steps", "400", "--seed", "3",
                     "--eval-every-env-steps", "200", "--no-save-replay", "--no-video"]  # fmt: skip
    parsed = vars(trainer.parser().parse_args([*flags, "--out", "x"]))
    assert {k: parsed[k] for k in settings} == settings
    assert trainer.flags({"save_replay": True}) == ["--save-replay"]
    assert trainer.thread_flags(2) == ["--threads", "2"]
    with pytest.raises(
        UserError, match="'batchsize' is not a config field of curl_agents.train; allowed: .*batch_size"
    ):
        trainer.flags({"batchsize": 3})
    for runner_sets in ("threads", "no_progress", "out"):
        with pytest.raises(UserError, match="set by the runner"):
            trainer.flags({runner_sets: 3})
    with pytest.raises(UserError, match="launch option"):
        trainer.flags({"resume_without_replay": True})
    with pytest.raises(UserError, match="rejects the flags --env cartpole-swingup --env-steps many"):
        trainer.check({"env": "cartpole-swingup", "env_steps": "many"}, "here")


@pytest.mark.parametrize(
    "trainer, old, new",
    [("curl_agents.train", "steps", "env_steps"), ("curl_agents.train", "init_steps", "init_agent_steps"),
     ("curl_agents.train", "torch_threads", "threads"), ("curl_agents.train", "episode_length", "episode_env_steps")],
)  # fmt: skip
def test_a_deprecated_flag_is_refused_in_grid_files_with_the_field_it_became(trainer, old, new):
    """The trainer still parses its old flags (with a notice); a grid file must name the config field."""
    with pytest.raises(UserError, match=f"setting '{old}': --{old.replace('_', '-')} is an old name of .*'{new}'"):
        TRAINERS[trainer].flags({old: 1})


def test_cut_settings_map_to_its_train_flags_and_a_trained_run_only_needs_evaluating(tmp_path):
    from ssl_shared.run_dir import CheckpointStore

    trainer = TRAINERS["cut_translation.cli"]
    settings = {"model": "cut", "data": "d", "nce_layers": [0, 4, 8], "nce_idt": False, "flip": False, "n_layers": 2}
    flags = trainer.flags(settings)
    assert flags == ["--model", "cut", "--data", "d", "--no-flip", "--n-layers", "2", "--no-nce-idt",
                     "--nce-layers", "0", "4", "8"]  # fmt: skip
    parsed = vars(trainer.parser().parse_args([*flags, "--out", "x"]))
    assert {k: parsed[k] for k in settings} == settings
    with pytest.raises(UserError, match="setting 'flip': got 'no'"):
        trainer.flags({"flip": "no"})
    out = tmp_path / "run"
    (commands, resume) = trainer.commands(settings, out, threads=1)
    assert [c[1:4] for c in commands] == [
        ["-m", "cut_translation.cli", "train"],
        ["-m", "cut_translation.cli", "evaluate"],
    ]
    assert not resume and "--resume" not in commands[0] and commands[0][-4:-2] == ["--threads", "1"]
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "latest.pt").write_bytes(
        b""
    )  # an earlier version's checkpoint: scv-cut-train cannot resume it
    assert not trainer.has_checkpoint(out)
    with CheckpointStore(out / "checkpoints").save(500) as folder:
        (folder / "state.pt").write_bytes(b"")
    commands, resume = trainer.commands(settings, out, threads=1)
    assert resume and commands[0][-1] == "--resume"
    (out / "summary.json").write_text("{}")
    commands, _ = trainer.commands(settings, out, threads=1)
    assert len(commands) == 1 and commands[0][3] == "evaluate"
    assert commands[0][-4:] == ["--device", "auto", "--threads", "1"]
    assert not trainer.finished(out)
    (out / "eval.json").write_text("{}")
    assert trainer.finished(out)


def test_ssl_settings_use_its_own_parser_and_probe_only_cells_have_no_step_budget(tmp_path):
    trainer = TRAINERS["ssl_shared.train"]
    settings = {"method": "simclr", "widths": [16, 32], "probe_only": True, "steps": 1000}
    flags = trainer.flags(settings)
    assert flags == ["--method", "simclr", "--widths", "16", "32", "--steps", "1000", "--probe-only"]
    from ssl_shared.train import TrainerConfig, config_from_args

    assert config_from_args([*flags, "--out", "x"]) == TrainerConfig(
        method="simclr", widths=(16, 32), probe_only=True, steps=1000, out="x"
    )
    assert trainer.thread_flags(4) == ["--threads", "4"]
    with pytest.raises(UserError, match="launch option"):
        trainer.flags({"stop_after": 10})
    (tmp_path / "config.json").write_text(json.dumps({"steps": 1000, "probe_only": True}))
    assert trainer.progress(tmp_path) == (None, 0)
    (tmp_path / "config.json").write_text(json.dumps({"steps": 1000, "probe_only": False}))
    (tmp_path / "train.csv").write_text("step,time_s,loss\n0,0.1,5\n25,2.0,4\n")
    assert trainer.progress(tmp_path) == (26, 1000)


def test_checkpoint_store_folders_count_as_resumable(tmp_path):
    from ssl_shared.run_dir import CheckpointStore

    trainer = TRAINERS["ssl_shared.train"]
    assert not trainer.has_checkpoint(tmp_path)
    with CheckpointStore(tmp_path / "checkpoints").save(10) as folder:
        (folder / "state.pt").write_bytes(b"x")
    assert trainer.has_checkpoint(tmp_path)


def test_progress_readers_skip_a_half_written_last_line(tmp_path):
    note = '"replay restarted empty at env step 1000 (--resume-without-replay): 1,000 random steps"'
    (tmp_path / "eval.csv").write_text(EVAL_HEADER + f"0,0,1,0,1,1,1,0,\n10000,1250,5,0,5,5,1,3,{note}\n20000,25")
    assert [r["env_step"] for r in _csv_rows(tmp_path / "eval.csv")] == ["0", "10000"]
    (tmp_path / "config.json").write_text(json.dumps({"env_steps": 100000}))
    assert TRAINERS["curl_agents.train"].progress(tmp_path) == (10000, 100000)


# ----------------------------------------------------------------------------------------- GPU packing


def test_gpu_slots_pack_fractional_jobs_and_give_whole_gpus():
    assert gpu_slots(8, 0.25, ["0", "1"]) == ["0", "0", "0", "0", "1", "1", "1", "1"]
    assert gpu_slots(3, 0.5, ["4", "6"]) == ["4", "4", "6"]
    assert gpu_slots(2, 2, ["0", "1", "2", "3"]) == ["0,1", "2,3"]
    assert gpu_slots(2, 0, ["0"]) == ["", ""]
    assert gpu_slots(2, None, []) == [None, None]
    with pytest.raises(UserError, match="hold at most 4 jobs"):
        gpu_slots(5, 0.5, ["0", "1"])
    with pytest.raises(UserError, match="whole number"):
        gpu_slots(1, 1.5, ["0", "1"])


def test_submitit_parameters_prefix_cluster_keys_and_take_the_runners_flags():
    params = submitit_parameters({"timeout_min": 60, "partition": "gpu", "mem_gb": 8}, "grid-x", 4, 0.25, 3)
    assert params == {"name": "grid-x", "timeout_min": 60, "slurm_partition": "gpu", "mem_gb": 8, "cpus_per_task": 4,
                      "gpus_per_node": 1, "slurm_array_parallelism": 3}  # fmt: skip


# ----------------------------------------------------------------------------------------- the runner (stub trainer)

STUB_GRID = """
trainer = "stub"
[fixed]
steps = 3
[axes]
mode = [{label = "ok", fail_at = -1}, {label = "fails", fail_at = 1}]
seed = [1, 2]
"""


def _stub_progress(out: Path) -> tuple[int | None, int | None]:
    rows = _csv_rows(out / "progress.csv")
    return (int(rows[-1]["step"]) + 1 if rows else None), None


@pytest.fixture
def stub(monkeypatch):
    trainer = Trainer(
        name="stub", command=(str(Path(grid_stub_trainer.__file__)),), parser=grid_stub_trainer.build_parser,
        completion_file="done.json", resume_markers=("ckpt",), budget_field="steps", unit="steps", report_kind="probe",
        data_files=("done.json",), progress=_stub_progress, thread_field="threads",
    )  # fmt: skip
    monkeypatch.setitem(TRAINERS, "stub", trainer)
    return trainer


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def test_runner_records_failures_resumes_them_and_never_touches_finished_runs(tmp_path, stub, capsys):
    grid_file = write_grid(tmp_path, STUB_GRID)
    root = tmp_path / "runs"
    args = ["run", str(grid_file), "--root", str(root), "--jobs", "2", "--threads-per-job", "1"]
    with pytest.raises(SystemExit) as exit_info:
        grid_main(args)
    assert exit_info.value.code == 1  # two cells failed
    where = Layout(root.resolve() / "g")
    cells = {c.cell_id: c for c in plan(load_grid(grid_file)).cells}
    for seed in (1, 2):
        ok, bad = cells[f"mode=ok/seed={seed}"], cells[f"mode=fails/seed={seed}"]
        done = json.loads((where.run_dir(ok) / "done.json").read_text())
        assert (done["threads"], done["omp"], done["resumed_from"]) == (1, "1", 0)
        state = json.loads(where.state_path(bad).read_text())
        assert (state["status"], state["exit_code"], state["error"]) == ("failed", 3, "stub: loss is nan at step 1")
        assert state["grid_sha256"] == load_grid(grid_file).sha256
        assert cell_status(bad, stub, where).status == "failed"
    text = render(plan(load_grid(grid_file)), stub, [cell_status(c, stub, where) for c in cells.values()])
    assert "2 cells: " not in text and "4 cells: 2 done, 0 running, 2 failed, 0 pending" in text
    assert "failed*" not in text and "stub: loss is nan at step 1" in text

    finished = {c: _snapshot(where.run_dir(cells[c])) for c in cells if c.startswith("mode=ok")}
    capsys.readouterr()
    grid_main(args)  # the failed cells resume from their checkpoint; the finished ones are skipped
    printed = capsys.readouterr().out
    assert "skip    mode=ok/seed=1: done" in printed and "resume  mode=fails/seed=1 (was failed" in printed
    for c, snapshot in finished.items():
        assert _snapshot(where.run_dir(cells[c])) == snapshot
    for seed in (1, 2):
        out = where.run_dir(cells[f"mode=fails/seed={seed}"])
        assert json.loads((out / "done.json").read_text())["resumed_from"] == 1
        assert (out / "calls.txt").read_text().splitlines()[-1].endswith("--resume")
        assert [r["step"] for r in _csv_rows(out / "progress.csv")] == ["0", "1", "2"]


def test_runner_runs_jobs_side_by_side_and_packs_them_on_the_visible_gpus(tmp_path, stub, monkeypatch):
    meet = tmp_path / "meet"
    grid_file = write_grid(
        tmp_path, f'trainer = "stub"\n[fixed]\nrendezvous = "{meet}"\npeers = 2\n[axes]\nseed = [1, 2]\n'
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    grid_main(["run", str(grid_file), "--root", str(tmp_path / "r"), "--jobs", "2", "--gpus-per-job", "1"])
    runs = sorted((tmp_path / "r").resolve().glob("g/runs/seed=*/done.json"))
    assert sorted(json.loads(p.read_text())["cuda"] for p in runs) == ["3", "5"]  # both met: they ran together


def test_runner_moves_aside_an_unresumable_folder_and_skips_a_running_cell(tmp_path, stub, capsys):
    grid_file = write_grid(tmp_path, 'trainer = "stub"\n[axes]\nseed = [1, 2]\n')
    cells = plan(load_grid(grid_file)).cells
    where = Layout((tmp_path / "r").resolve() / "g")
    partial = where.run_dir(cells[0])
    partial.mkdir(parents=True)
    (partial / "stray.txt").write_text("from a run killed before its first checkpoint")
    busy = where.run_dir(cells[1])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(busy)])
    try:
        where.cell_dir(cells[1]).mkdir(parents=True)
        where.state_path(cells[1]).write_text(
            json.dumps({"status": "running", "pid": sleeper.pid, "host": socket.gethostname(), "started_at": 1.0})
        )
        grid_main(["run", str(grid_file), "--root", str(tmp_path / "r")])
        assert "skip    seed=2: running (pid" in capsys.readouterr().out
        assert not (busy / "done.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert (partial.with_name("seed=1.partial-1") / "stray.txt").is_file()
    assert (partial / "done.json").is_file() and not (partial / "stray.txt").exists()
    assert cell_status(cells[1], stub, where).note == "interrupted"  # its process is gone


def test_a_stopped_runner_stops_its_trainers_skips_queued_cells_and_the_rerun_resumes_them(tmp_path, stub, capsys):
    """SIGTERM to the runner (what ``kill`` or a scheduler sends; Ctrl-C takes the same path) while two
    trainers hold at step 1 and a third cell waits: the two trainers end, their cells are recorded as
    interrupted, the third never starts, the runner exits 130, and the same command then resumes all."""
    from experiments.grid.state import process_alive

    grid_file = write_grid(tmp_path, 'trainer = "stub"\n[fixed]\nsteps = 3\nhold_at = 1\n[axes]\nseed = [1, 2, 3]\n')
    cells = plan(load_grid(grid_file)).cells
    where = Layout((tmp_path / "r").resolve() / "g")
    args = ["run", str(grid_file), "--root", str(tmp_path / "r"), "--jobs", "2", "--threads-per-job", "1"]

    def stop_when_both_hold():
        deadline = time.monotonic() + 60
        while not all((where.run_dir(c) / "ckpt").exists() for c in cells[:2]) and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_when_both_hold)
    stopper.start()
    with pytest.raises(SystemExit) as exit_info:
        grid_main(args)
    stopper.join()
    assert exit_info.value.code == 130
    assert "interrupted: stopped seed=1, seed=2; rerun the same command to resume" in capsys.readouterr().err
    for cell in cells[:2]:
        state = json.loads(where.state_path(cell).read_text())
        assert state["status"] == "interrupted" and not process_alive(state["pid"])
        assert cell_status(cell, stub, where).note == "interrupted"
    assert not where.run_dir(cells[2]).exists() and not where.state_path(cells[2]).exists()

    grid_main(args)
    resumed = [json.loads((where.run_dir(c) / "done.json").read_text())["resumed_from"] for c in cells]
    assert resumed == [1, 1, 0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_process_whose_command_line_cannot_be_read_counts_as_alive(tmp_path):
    """A child that exited but is not reaped yet (or one between fork and exec) has an empty
    /proc/PID/cmdline: nothing says it is another program, so its launch is still running."""
    from experiments.grid.state import process_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{child.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not reaped: a zombie
        os.sched_yield()
    assert Path(f"/proc/{child.pid}/cmdline").read_bytes() == b""
    assert process_alive(child.pid, tmp_path / "run")
    child.wait()
    assert not process_alive(child.pid, tmp_path / "run")


def test_dry_run_creates_nothing_and_a_second_runner_is_refused(tmp_path, stub, capsys):
    from experiments.grid.cli import exclusive

    grid_file = write_grid(tmp_path, 'trainer = "stub"\n[axes]\nseed = [1]\n')
    grid_main(["run", str(grid_file), "--root", str(tmp_path / "r"), "--threads-per-job", "1", "--dry-run"])
    assert "grid_stub_trainer.py --seed 1 --threads 1 --out" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()
    (tmp_path / "r" / "g").mkdir(parents=True)
    with exclusive((tmp_path / "r" / "g" / "run.lock").resolve()):
        with pytest.raises(SystemExit) as exit_info:
            grid_main(["run", str(grid_file), "--root", str(tmp_path / "r")])
    assert exit_info.value.code == 2 and "another `python -m experiments.grid run` holds" in capsys.readouterr().err


def test_status_eta_from_measured_throughput(tmp_path, stub):
    from experiments.grid.state import CellStatus

    cells = plan(load_grid(write_grid(tmp_path, STUB_GRID))).cells[:2]
    running = CellStatus(
        cells[0], "running", False, 600, 1100, {"progress_at_start": 100, "started_at": 1000.0}, "pid 1"
    )
    pending = CellStatus(cells[1], "pending", True, 200, 1100, {}, "interrupted")
    text = render(plan(load_grid(tmp_path / "g.toml")), stub, [running, pending], clock=1100.0)
    # 500 steps in 100 s = 5 steps/s: 500 left -> 100 s; the grid: 500 + 900 left at 5/s x 1 job -> 280 s
    assert "600 / 1,100 (55%)" in text and " 1m40s  pid 1" in text
    assert "pending*" in text and "(1 resumable from a checkpoint, marked *)" in text
    assert "ETA 4m40s for 1,400 steps left at 5.0 steps/s per job x 1 job(s)" in text


def test_last_line_reads_through_progress_bar_carriage_returns(tmp_path):
    log = tmp_path / "stderr.log"
    log.write_text("step 1\rstep 2\rTraceback (most recent call last):\n  ...\nValueError: bad\n\n")
    assert last_line(log) == "ValueError: bad"
    assert last_line(tmp_path / "missing.log") == ""


# ----------------------------------------------------------------------------------------- RL report

RL_GRID = """
trainer = "curl_agents.train"
description = "synthetic"
[fixed]
env_steps = 100000
[axes]
env = ["cartpole-swingup", "walker-walk"]
algo = ["curl", "rad"]
seed = [1, 2, 3]
[report]
task = "env"
budget = "env_steps"
seed = "seed"
baseline = "rad"
published = "dmc_planet"
[protocols.cpu]
reduced = true
description = "smaller"
"""
FINALS = {("cartpole-swingup", "curl"): [600.0, 700.0, 800.0], ("cartpole-swingup", "rad"): [500.0, 650.0, 700.0],
          ("walker-walk", "curl"): [300.0, 420.0, 450.0], ("walker-walk", "rad"): [450.0, 400.0, 350.0]}  # fmt: skip


def _fake_rl_runs(root: Path, name: str = "g") -> None:
    for (env, algo), finals in FINALS.items():
        for seed, final in enumerate(finals, start=1):
            out = root / name / "runs" / f"env={env}/algo={algo}/seed={seed}"
            out.mkdir(parents=True)
            (out / "config.json").write_text(json.dumps({"env": env, "algo": algo, "seed": seed, "env_steps": 100000}))
            (out / "eval.csv").write_text(EVAL_HEADER + f"0,0,5,0,5,5,10,0,\n50000,6250,{final / 2},0,0,0,10,5,\n"
                                          f"100000,12500,{final},0,0,0,10,9,\n")  # fmt: skip
            (out / "summary.json").write_text(json.dumps({"final_mean_return": final}))


def _report(tmp_path: Path, *extra: str) -> Path:
    grid_main(["report", str(tmp_path / "g.toml"), "--root", str(tmp_path / "runs"), "--results",
               str(tmp_path / "results"), "--reps", "300", *extra])  # fmt: skip
    protocol = extra[extra.index("--protocol") + 1] if "--protocol" in extra else None
    return tmp_path / "results" / ("g" if protocol is None else f"g_{protocol}")


def _poi(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) per task (ties count half), averaged over tasks."""
    per_task = [np.mean([[1.0 if a > b else 0.5 if a == b else 0.0 for b in y[:, t]] for a in x[:, t]])
                for t in range(x.shape[1])]  # fmt: skip
    return float(np.mean(per_task))


def test_rl_report_table_and_aggregates_match_independent_formulas(tmp_path):
    write_grid(tmp_path, RL_GRID)
    _fake_rl_runs(tmp_path / "runs")
    folder = _report(tmp_path)
    text = (folder / "report.md").read_text()
    for finals in FINALS.values():
        assert f"{np.mean(finals):.1f} ± {np.std(finals):.1f} (3)" in text  # population std over seeds
    assert "| cartpole-swingup | 700.0 ± 81.6 (3) | 616.7 ± 85.0 (3) | 582 ± 146 |" in text  # CURL paper beside ours
    assert "RAD†" in text and "not yet checked against the paper" in text
    matrices = {a: np.array([[FINALS[(e, a)][s] / 1000 for e in ("cartpole-swingup", "walker-walk")]
                             for s in range(3)]) for a in ("curl", "rad")}  # fmt: skip
    for algo, x in matrices.items():
        iqm, mean, gap = stats.trim_mean(x.ravel(), 0.25), x.mean(), np.maximum(1 - x, 0).mean()
        assert f"| {algo} | 3 x 2 | {iqm:.3f} [" in text
        assert f"] | {mean:.3f} [" in text and f"] | {gap:.3f} [" in text
    assert f"| curl | {_poi(matrices['curl'], matrices['rad']):.3f} [" in text
    assert "cells: complete" in text and "normalised by 1000" in text
    scores = (folder / "scores.csv").read_text().splitlines()
    assert scores[1] == "env=cartpole-swingup/algo=curl/seed=1,curl,cartpole-swingup,100000,1,100000,600"
    assert (folder / "runs/env=walker-walk/algo=rad/seed=3/eval.csv").is_file()


def test_rl_report_regenerates_byte_identically_from_the_copied_data(tmp_path):
    write_grid(tmp_path, RL_GRID)
    _fake_rl_runs(tmp_path / "runs")
    folder = _report(tmp_path)
    first = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert {"report.md", "scores.csv", "grid.toml", "performance_profile_100000.png",
            "sample_efficiency_100000.png"} <= set(first)  # fmt: skip
    shutil.rmtree(tmp_path / "runs")  # the runs are gone: only the committed copies remain
    (tmp_path / "g.toml").write_text(RL_GRID.replace("seed = [1, 2, 3]", "seed = [1]"))  # the file moved on
    grid_main(["report", "g", "--results", str(tmp_path / "results"), "--reps", "300", "--from-results"])
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == first


def test_rl_report_of_a_partial_reduced_grid_says_so(tmp_path):
    write_grid(tmp_path, RL_GRID)
    _fake_rl_runs(tmp_path / "runs", name="g_cpu")
    (tmp_path / "runs/g_cpu/runs/env=walker-walk/algo=rad/seed=3/summary.json").unlink()  # unfinished
    text = (_report(tmp_path, "--protocol", "cpu") / "report.md").read_text()
    assert text.startswith("# g_cpu (REDUCED BUDGET)") and "REDUCED BUDGET, not comparable" in text
    assert "cells: PARTIAL: 11 of 12 cells finished" in text
    assert "| rad | walker-walk | 100000 | 2 (1, 2) | 3 |" in text
    assert "| rad | 2 x 2 |" in text and "rad: only the seeds finished on every task (rad: 1, 2)" in text


def test_rl_report_fails_on_a_run_evaluated_twice_at_one_step(tmp_path):
    write_grid(tmp_path, RL_GRID)
    _fake_rl_runs(tmp_path / "runs")
    path = tmp_path / "runs/g/runs/env=walker-walk/algo=curl/seed=2/eval.csv"
    path.write_text(path.read_text() + "100000,12500,999,0,0,0,10,9,\n")  # a second final evaluation
    with pytest.raises(ValueError, match="two rows for env_step=100000"):
        _report(tmp_path)


# ----------------------------------------------------------------------------------------- table reports


def test_translation_and_probe_reports_tabulate_mean_and_std_over_seeds(tmp_path):
    cut = 'trainer = "cut_translation.cli"\n[axes]\ndata = [{label = "d", data = "x"}]\nmodel = ["cut", "cyclegan"]\n' \
          'seed = [0, 1]\n[report]\ntask = "data"\nseed = "seed"\n'  # fmt: skip
    write_grid(tmp_path, cut)
    psnr = {("cut", 0): 20.0, ("cut", 1): 22.0, ("cyclegan", 0): 18.0, ("cyclegan", 1): 18.5}
    for (model, seed), value in psnr.items():
        out = tmp_path / f"runs/g/runs/data=d/model={model}/seed={seed}"
        out.mkdir(parents=True)
        (out / "summary.json").write_text("{}")
        paired = {"l1": 0.1, "psnr": value, "ssim": 0.5, "identity_l1": 0.3, "identity_psnr": 11.0,
                  "identity_ssim": 0.25, "n": 8}  # fmt: skip
        (out / "eval.json").write_text(json.dumps({"iteration": 1000, "paired": paired, "fid_kid": "skipped"}))
    text = (_report(tmp_path) / "report.md").read_text()
    assert f"| cut | 1,000 | 0.1000 ± 0.0000 (2) | {np.mean([20, 22]):.2f} ± {np.std([20, 22]):.2f} (2) |" in text
    assert "| identity (testA as the output) | - | 0.3000 | 11.00 | 0.2500 | - | - |" in text

    probe = 'trainer = "ssl_shared.train"\n[axes]\ndata = ["digits"]\nmethod = ["random_init", "simclr", "byol"]\n' \
            'seed = [0, 1]\n[report]\ntask = "data"\nseed = "seed"\n'  # fmt: skip
    write_grid(tmp_path, probe, "p")
    accuracy = {"random_init": [0.80, 0.82], "simclr": [0.90, 0.86], "byol": [0.79, 0.80]}
    for method, values in accuracy.items():
        for seed, value in enumerate(values):
            out = tmp_path / f"runs/p/runs/data=digits/method={method}/seed={seed}"
            out.mkdir(parents=True)
            (out / "probe.json").write_text(json.dumps({"linear_probe_accuracy": value, "knn_accuracy": value - 0.1}))
    grid_main(
        ["report", str(tmp_path / "p.toml"), "--root", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    )
    text = (tmp_path / "results/p/report.md").read_text()
    assert f"| simclr | {np.mean([0.90, 0.86]):.3f} ± {np.std([0.90, 0.86]):.3f} (2) |" in text
    assert "| simclr " in text and text.split("| simclr ")[1].split("\n")[0].split("|")[3].strip() == "yes"
    assert text.split("| byol ")[1].split("\n")[0].split("|")[3].strip() == "no"  # 0.795 < 0.81


# ----------------------------------------------------------------------------------------- the shortcuts


def test_compare_aux_shortcut_is_the_aux_grid_restricted_to_the_given_cells(tmp_path, capsys):
    from experiments import compare_aux

    compare_aux.main(["--aux", "none", "byol", "--seeds", "1", "2", "--runs", str(tmp_path), "--dry-run"])
    printed = capsys.readouterr().out
    starts = [line.split()[1] for line in printed.splitlines() if line.startswith("start")]
    assert starts == [f"seed={s}/env=cartpole-swingup/aux={a}" for s in (1, 2) for a in ("none", "byol")]
    assert printed.count("--algo curl") == 4 and not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------- end to end (real trainer)


def test_smoke_grid_end_to_end_with_local_workers(tmp_path, capsys):
    """Two tiny curl_agents.train cells run side by side, then status and report; a rerun changes nothing."""
    root, results = tmp_path / "runs", tmp_path / "results"
    grid_main(["run", "smoke", "--root", str(root), "--jobs", "2", "--threads-per-job", "1"])
    grid_main(["status", "smoke", "--root", str(root)])
    status = capsys.readouterr().out
    assert "2 cells: 2 done, 0 running, 0 failed, 0 pending" in status and "400 / 400 (100%)" in status
    runs = root / "smoke" / "runs"
    for algo in ("state_sac", "curl"):
        out = runs / f"algo={algo}/seed=1"
        assert json.loads((out / "config.json").read_text())["threads"] == 1
        assert [r["env_step"] for r in _csv_rows(out / "eval.csv")] == ["0", "200", "400"]
        (launch,) = json.loads((out / "launches.json").read_text())
        assert "--threads 1 --no-progress --out" in launch["command"] and launch["resume"] is False
    before = _snapshot(runs)
    grid_main(["run", "smoke", "--root", str(root)])
    assert "0 of 2 cells to run" in capsys.readouterr().out
    assert _snapshot(runs) == before  # a finished run is never resumed: no second final evaluation
    grid_main(["report", "smoke", "--root", str(root), "--results", str(results), "--reps", "200"])
    text = (results / "smoke" / "report.md").read_text()
    assert "# smoke (REDUCED BUDGET)" in text and "| cartpole-swingup | " in text and "cells: complete" in text
    assert (results / "smoke" / "runs/algo=curl/seed=1/eval.csv").read_bytes() == (
        runs / "algo=curl/seed=1/eval.csv"
    ).read_bytes()


def test_submitit_local_executor_runs_a_cell(tmp_path, capsys):
    pytest.importorskip("submitit")
    root = tmp_path / "runs"
    grid_main(["run", "smoke", "--select", "algo=state_sac", "--root", str(root), "--launcher", "submitit",
               "--cluster", "local", "--threads-per-job", "1", "--wait"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "submitted as job" in printed and "1 of 1 cells finished; failed: none" in printed
    cell = root / "smoke" / "cells/algo=state_sac/seed=1"
    state = json.loads((cell / "state.json").read_text())
    submission = json.loads((cell / "submission.json").read_text())
    assert state["status"] == "done" and state["launcher"] == "submitit" and state["job_id"] == submission["job_id"]
    assert (root / "smoke" / "runs/algo=state_sac/seed=1/summary.json").is_file()


def test_committed_smoke_report_regenerates_byte_identically(tmp_path):
    committed = REPO / "experiments" / "results" / "smoke"
    report = (committed / "report.md").read_text()
    from experiments.grid.report import _versions

    if f"- versions used for the statistics and figures: {_versions()}" not in report:
        pytest.skip("the committed report was made with other package versions")
    shutil.copytree(committed, tmp_path / "smoke")
    for generated in ("report.md", "scores.csv", "performance_profile_400.png", "sample_efficiency_400.png"):
        (tmp_path / "smoke" / generated).unlink()
    grid_main(["report", "smoke", "--results", str(tmp_path), "--from-results"])
    for path in committed.iterdir():
        if path.is_file():
            assert (tmp_path / "smoke" / path.name).read_bytes() == path.read_bytes(), path.name
    assert sorted(os.listdir(tmp_path / "smoke" / "runs")) == sorted(os.listdir(committed / "runs"))


def test_report_copies_run_files_with_repository_paths_made_relative(tmp_path):
    from experiments.grid.report import copy_portably
    from ssl_shared.provenance import REPO

    source = tmp_path / "config.json"
    source.write_text(json.dumps({"out": f"{REPO}/runs/grids/g/runs/seed=1", "data": "/data/elsewhere"}))
    copy_portably(source, tmp_path / "copy.json")
    assert json.loads((tmp_path / "copy.json").read_text()) == {
        "out": "runs/grids/g/runs/seed=1",
        "data": "/data/elsewhere",
    }
