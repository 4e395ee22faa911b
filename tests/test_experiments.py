"""Scores of runs, the published tables, and the paper-table shortcut, against independent computations."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from curl_agents.presets import PLANET_PRESETS
from experiments.aggregate import bootstrap_mean_ci, final_score, read_eval_csv
from experiments.paper_scores import CURL_TABLE, DRQ_TABLE, PLANET_TASKS, PUBLISHED, RAD_TABLE, budget_key

EVAL_HEADER = "env_step,agent_step,mean_return,std_return,min_return,max_return,episodes,wall_time_s\n"


def test_bootstrap_ci_brackets_mean_and_degenerates_for_constants():
    mean, lo, hi = bootstrap_mean_ci(np.array([1.0, 2.0, 3.0, 10.0]))
    assert mean == pytest.approx(4.0)
    assert lo <= mean <= hi
    # all resamples of a constant have the same mean
    assert bootstrap_mean_ci(np.full(5, 7.0)) == (7.0, 7.0, 7.0)
    with pytest.raises(ValueError):
        bootstrap_mean_ci(np.array([]))


def test_read_eval_csv_refuses_two_rows_for_one_env_step(tmp_path):
    """A finished run resumed once more appended a second final evaluation (new episode seeds) at the same
    env step; sorting the rows and taking the last one reported the better of the two. It must fail."""
    path = tmp_path / "eval.csv"
    path.write_text(EVAL_HEADER + "0,0,10,0,10,10,10,1\n100000,12500,300,0,0,0,10,9\n100000,12500,700,0,0,0,10,9\n")
    with pytest.raises(ValueError, match="env_step=100000"):
        read_eval_csv(path)


def test_read_eval_csv_reads_the_trainers_note_column_and_refuses_a_repeated_step(tmp_path):
    """``curl_agents.train`` writes a text ``note`` (quoted when it holds commas); scores ignore it."""
    path = tmp_path / "eval.csv"
    header = EVAL_HEADER.replace("\n", ",note\n")
    note = '"replay restarted empty at env step 160 (--resume-without-replay): 1,000 random agent steps again"'
    path.write_text(header + f"0,0,10,0,10,10,10,1,\n160,20,55.5,0,0,0,10,5,{note}\n320,40,99.25,0,0,0,10,9,\n")
    assert read_eval_csv(path) == [(0, 10.0), (160, 55.5), (320, 99.25)]
    path.write_text(path.read_text() + "320,40,300,0,0,0,10,9,second final evaluation\n")
    with pytest.raises(ValueError, match="two rows for env_step=320"):
        read_eval_csv(path)


def test_read_eval_csv_keeps_file_order_and_refuses_decreasing_steps(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text(EVAL_HEADER + "0,0,10,0,10,10,10,1\n50000,6250,250.5,0,0,0,10,5\n")
    assert read_eval_csv(path) == [(0, 10.0), (50000, 250.5)]
    path.write_text(EVAL_HEADER + "50000,6250,250,0,0,0,10,5\n0,0,10,0,10,10,10,1\n")
    with pytest.raises(ValueError, match="must increase"):
        read_eval_csv(path)


def test_final_score_is_the_runs_own_last_evaluation_at_its_budget():
    rows = [(0, 1.0), (48_000, 900.0), (96_000, 7.0), (100_000, 5.0)]
    assert final_score(rows, 100_000) == (100_000, 5.0)  # the last row, not the best
    # 400 env steps at action repeat 8 end at 50 agent steps = 400; 500 would end at 504
    assert final_score([(0, 1.0), (504, 2.0)], 500) == (504, 2.0)
    with pytest.raises(ValueError, match="before the budget"):
        final_score([(0, 1.0), (96_000, 7.0)], 100_000)  # stopped early: no score
    with pytest.raises(ValueError, match="no evaluation rows"):
        final_score([], 100)


def test_paper_tables_have_every_task_and_budget():
    for budget in ("100k", "500k"):
        assert set(CURL_TABLE[budget]["CURL"]) == set(PLANET_TASKS)
        assert set(DRQ_TABLE[budget]) == set(RAD_TABLE[budget]) == set(PLANET_TASKS)
        # SLACv1 has no cartpole-swingup and reacher-easy scores in the CURL paper
        assert set(CURL_TABLE[budget]["SLACv1"]) == set(PLANET_TASKS) - {"cartpole-swingup", "reacher-easy"}
    assert CURL_TABLE["100k"]["CURL"]["cartpole-swingup"] == (582, 146)
    assert PLANET_TASKS == tuple(PLANET_PRESETS)  # the agents' task presets, in the same order
    assert CURL_TABLE["100k"]["State SAC"]["cartpole-swingup"] == (835, 22)
    assert CURL_TABLE["500k"]["SLACv1"]["cheetah-run"] == (640, 19)
    assert DRQ_TABLE["100k"]["cartpole-swingup"] == (759, 92)
    names = [p.name for p in PUBLISHED]
    assert names[:7] == ["CURL", "PlaNet", "Dreamer", "SAC+AE", "SLACv1", "Pixel SAC", "State SAC"]
    assert [p.name for p in PUBLISHED if not p.checked] == ["RAD"]
    assert (budget_key(100_000), budget_key(500_000), budget_key(400)) == ("100k", "500k", None)


def _out_paths(stdout: str) -> list[Path]:
    paths = []
    for line in stdout.splitlines():
        words = shlex.split(line)
        if "--out" in words:
            paths.append(Path(words[words.index("--out") + 1]))
    return paths


def test_reproduce_dmc_launch_does_not_resume_a_finished_run(tmp_path, capsys):
    """A finished run (summary.json) is skipped, although its checkpoint would let it resume: resuming it
    would evaluate its end a second time. No command is run and no file of the run changes."""
    from experiments import reproduce_dmc
    from ssl_shared.run_dir import CheckpointStore

    argv = ["launch", "--algos", "curl", "--tasks", "cartpole-swingup", "--seeds", "1", "--budget", "100k",
            "--runs", str(tmp_path)]  # fmt: skip
    reproduce_dmc.main([*argv, "--dry-run"])
    printed = capsys.readouterr().out
    (out,) = _out_paths(printed)
    cell = "env=cartpole-swingup/env_steps=100000/algo=curl/seed=1"
    assert f"start   {cell}" in printed and "--env-steps 100000" in printed and "--resume" not in printed
    with CheckpointStore(out / "checkpoints").save(100_000) as folder:
        (folder / "model.zip").write_bytes(b"weights")
    (out / "config.json").write_text(json.dumps({"env": "cartpole-swingup", "algo": "curl", "seed": 1}))
    (out / "eval.csv").write_text(EVAL_HEADER.replace("\n", ",note\n") + "0,0,10,0,10,10,10,1,\n"
                                  "100000,12500,600,0,0,0,10,9,\n")  # fmt: skip
    (out / "summary.json").write_text(json.dumps({"final_mean_return": 600.0, "env_steps": 100_000}))
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}
    reproduce_dmc.main(argv)  # a real launch, not a dry run
    again = capsys.readouterr().out
    assert f"skip    {cell}: done" in again and "0 of 1 cells to run" in again
    assert _out_paths(again) == [] and "--resume" not in again
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()} == files


def test_reproduce_dmc_algos_are_the_curl_table_grids_algorithms(capsys):
    from experiments import reproduce_dmc

    assert reproduce_dmc.grid_algos() == ["curl", "rad", "drq", "pixel_sac", "state_sac"]
    assert "algo=rad,drq" in " ".join(reproduce_dmc.grid_argv(["launch", "--algos", "rad", "drq"]))
    with pytest.raises(SystemExit):
        reproduce_dmc.grid_argv(["launch", "--algos", "sac_ae"])  # an algorithm the grid does not run
    assert "invalid choice: 'sac_ae'" in capsys.readouterr().err


def test_git_commit_marks_only_changes_under_the_given_paths(tmp_path):
    """A result file a job writes does not mark its commit; a code change does."""
    import subprocess

    from experiments.provenance import git_commit

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "a.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    head = git("rev-parse", "HEAD").strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "results.csv").write_text("1\n")
    assert git_commit(tmp_path) == f"{head} + uncommitted changes"
    assert git_commit(tmp_path, paths=("code",)) == head
    (tmp_path / "code" / "a.py").write_text("x = 2\n")
    assert git_commit(tmp_path, paths=("code",)) == f"{head} + uncommitted changes"
    assert git_commit(tmp_path / "missing") == "uncommitted"
