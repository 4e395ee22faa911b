"""Aggregation statistics against independent computations."""

import json

import numpy as np
import pytest
from scipy import stats

from experiments.aggregate import (
    bootstrap_mean_ci,
    collect_runs,
    iqm,
    score_at_budget,
    stratified_bootstrap_iqm,
    summarise,
)
from experiments.paper_scores import CURL_TABLE, PLANET_TASKS


def test_iqm_equals_scipy_trim_mean():
    rng = np.random.default_rng(0)
    for n in (4, 8, 12, 40):
        x = rng.normal(size=n)
        assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25))


def test_bootstrap_ci_brackets_mean_and_degenerates_for_constants():
    mean, lo, hi = bootstrap_mean_ci(np.array([1.0, 2.0, 3.0, 10.0]))
    assert mean == pytest.approx(4.0)
    assert lo <= mean <= hi
    # all resamples of a constant have the same mean
    assert bootstrap_mean_ci(np.full(5, 7.0)) == (7.0, 7.0, 7.0)
    with pytest.raises(ValueError):
        bootstrap_mean_ci(np.array([]))


def test_stratified_iqm_of_identical_tasks():
    point, lo, hi = stratified_bootstrap_iqm({"a": np.array([0.5, 0.5]), "b": np.array([0.5, 0.5])}, reps=50)
    assert (point, lo, hi) == (0.5, 0.5, 0.5)


def test_score_at_budget_picks_last_eval_before_budget():
    rows = [(0, 1.0), (50_000, 5.0), (96_000, 7.0), (104_000, 9.0)]
    assert score_at_budget(rows, 100_000) == (96_000, 7.0)
    assert score_at_budget(rows, 10) == (0, 1.0)
    assert score_at_budget([(200, 1.0)], 100) is None


def test_collect_and_summarise_runs(tmp_path):
    for seed, final in [(1, 100.0), (2, 300.0)]:
        run = tmp_path / f"s{seed}"
        run.mkdir()
        (run / "config.json").write_text(
            json.dumps({"env": "cartpole-swingup", "algo": "curl", "aux": "curl", "seed": seed})
        )
        (run / "eval.csv").write_text(f"env_step,mean_return\n0,1.0\n100000,{final}\n")
    rows = summarise(collect_runs(tmp_path, 100_000))
    assert len(rows) == 1
    assert rows[0]["n_seeds"] == 2
    assert rows[0]["mean"] == pytest.approx(200.0)
    assert rows[0]["std"] == pytest.approx(100.0)


def test_paper_table_has_every_task_and_budget():
    for budget in ("100k", "500k"):
        assert set(CURL_TABLE[budget]["CURL"]) == set(PLANET_TASKS)
    assert CURL_TABLE["100k"]["CURL"]["cartpole-swingup"] == (582, 146)
    assert CURL_TABLE["100k"]["State SAC"]["cartpole-swingup"] == (835, 22)


def test_reproduce_dmc_commands_use_env_steps_and_presets(tmp_path):
    from experiments.reproduce_dmc import launch_commands, table

    cmds = launch_commands(["curl"], ["cartpole-swingup"], [1, 2], "100k", tmp_path, ["--batch-size", "128"])
    assert len(cmds) == 2
    assert cmds[0][cmds[0].index("--steps") + 1] == "100000"
    assert cmds[1][-2:] == ["--batch-size", "128"]
    run = tmp_path / "curl" / "cartpole-swingup" / "seed1"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"env": "cartpole-swingup", "algo": "curl", "aux": "curl", "seed": 1}))
    (run / "eval.csv").write_text("env_step,mean_return\n100000,600\n")
    text = table(tmp_path, "100k")
    assert "| curl | cartpole-swingup | 1 | 600 +- 0 |" in text
    assert "582 +- 146" in text  # the paper's CURL 100K cartpole score sits beside ours


def test_cut_quality_epoch_budget_sets_the_paper_schedule():
    from cut_translation.trainer import linear_lr_factor
    from experiments.run_cut_quality import SMALL, small_budget

    assert small_budget(None, 0) == SMALL
    budget = small_budget(4, 4)
    assert (budget["n_epochs"], budget["n_epochs_decay"]) == (4, 4)
    assert budget["generator"] == SMALL["generator"] and SMALL["n_epochs"] == 1  # the preset is not mutated
    # constant for 4 epochs, then 1 - k/5 for decay epoch k = 1..4 (CUT's linear policy)
    factors = [linear_lr_factor(e, 4, 4) for e in range(8)]
    assert factors == pytest.approx([1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    with pytest.raises(ValueError, match="epochs"):
        small_budget(0, 4)


def test_rad_baseline_runs_curl_settings_without_the_aux_loss():
    from experiments.run_curl import CURL_ARGS, RAD_ARGS

    def as_dict(args):  # "--flag value" pairs; the one bare flag (--save-replay) dropped
        pairs = [a for a in args if a != "--save-replay"]
        return dict(zip(pairs[::2], pairs[1::2]))

    curl, rad = as_dict(CURL_ARGS), as_dict(RAD_ARGS)
    assert curl.pop("--algo") == "curl" and curl.pop("--aux") == "curl"
    assert rad.pop("--algo") == "rad" and "--aux" not in rad
    assert rad == curl and "--save-replay" in RAD_ARGS


def test_run_curl_summary_counts_runs_at_target_and_bootstraps_the_mean(tmp_path, monkeypatch):
    import experiments.run_curl as run_curl

    monkeypatch.setattr(run_curl, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(run_curl, "RESULTS", tmp_path / "results")
    (tmp_path / "results").mkdir()
    config = {"algo": "curl", "aux": "curl", "batch_size": 32, "hidden_dim": 8, "image_size": 84, "render_size": 0,
              "lr": 0.0, "action_repeat": 0, "init_steps": 1000, "eval_every": 10000, "eval_episodes": 10}
    finals = {1: 240.0, 2: 260.0, 3: 300.0}
    for seed, final in finals.items():
        run = tmp_path / "runs" / f"g_s{seed}"
        run.mkdir(parents=True)
        run.joinpath("eval.csv").write_text("env_step,agent_step,mean_return,std_return,min_return,max_return,"
                                            f"episodes,wall_time_s\n0,0,10,0,10,10,10,1\n100000,12500,{final},0,0,0,10,9\n")
        run.joinpath("config.json").write_text(json.dumps(config))
        run.joinpath("launches.json").write_text(json.dumps([{"git_commit": f"c{seed}"}]))
        if seed != 3:  # seed 3 unfinished: its last row is partial and must not count
            run.joinpath("summary.json").write_text("{}")
    result = run_curl.summarize("g", "g_s", 250.0, "paper")
    assert result["finished_runs"] == 2 and result["mean_final_return"] == pytest.approx(250.0)
    assert result["runs_reaching_target"] == 1  # 260 >= 250, 240 is not; 300 is unfinished
    low, high = result["final_return_ci95"]
    assert low == pytest.approx(240.0) and high == pytest.approx(260.0)  # bootstrap means of {240, 260} span it
    assert result["runs"]["g_s2"]["launches"] == [{"git_commit": "c2"}]
    assert "1 of 2 run(s) at or above the target 250" in (tmp_path / "results" / "g_summary.md").read_text()


def test_run_curl_summary_carries_over_committed_runs_whose_directory_is_gone(tmp_path, monkeypatch):
    """A new seed on a new machine adds a row: the committed seeds stay, with the provenance they had."""
    import experiments.run_curl as run_curl

    monkeypatch.setattr(run_curl, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(run_curl, "RESULTS", tmp_path / "results")
    results = tmp_path / "results"
    results.mkdir()
    config = {"algo": "curl", "aux": "curl", "batch_size": 32, "hidden_dim": 8, "image_size": 84, "render_size": 0,
              "lr": 0.0, "action_repeat": 0, "init_steps": 1000, "eval_every": 10000, "eval_episodes": 10}
    header = "env_step,agent_step,mean_return,std_return,min_return,max_return,episodes,wall_time_s\n"
    old_row = {"finished": True, "last_env_step": 100000, "last_mean_return": 200.0, "wall_time_s": 5.0,
               "command": "old", "config": config, "launches": None}
    old = {"runs": {"g_s1": old_row, "g_s2": {**old_row, "last_mean_return": 1.0}},
           "provenance": {"git_commit": "old-commit"}}
    (results / "g_summary.json").write_text(json.dumps(old))
    (results / "g_s1_eval.csv").write_text(header + "100000,12500,200,0,0,0,10,5\n")
    (results / "g_s2_eval.csv").write_text(header + "100000,12500,1,0,0,0,10,5\n")
    for seed, final in [(2, 300.0), (3, 400.0)]:  # seed 2 rerun here: its new row replaces the old one
        run = tmp_path / "runs" / f"g_s{seed}"
        run.mkdir(parents=True)
        run.joinpath("eval.csv").write_text(header + f"100000,12500,{final},0,0,0,10,9\n")
        run.joinpath("config.json").write_text(json.dumps(config))
        run.joinpath("summary.json").write_text("{}")
    result = run_curl.summarize("g", "g_s", 250.0, "paper")
    assert list(result["runs"]) == ["g_s1", "g_s2", "g_s3"]
    assert result["runs"]["g_s1"]["carried_over"] and result["runs"]["g_s1"]["summarized_with"]["git_commit"] == "old-commit"
    assert "carried_over" not in result["runs"]["g_s2"] and result["runs"]["g_s2"]["last_mean_return"] == 300.0
    assert result["mean_final_return"] == pytest.approx((200.0 + 300.0 + 400.0) / 3)
    assert result["runs_reaching_target"] == 2
    assert (results / "g_curves.png").exists()


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
