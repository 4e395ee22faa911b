"""The offline comparison of auxiliary objectives: transition datasets, the offline trainer and its grid.

References are independent of the code under test: a pixel env (``make_env(from_pixels=True)``) replaying
the stored actions, MuJoCo re-rendering a stored physics state, an ordinary least-squares fit with numpy,
the AR(1) recursion written out, a counter of calls for the EMA cadence, an uninterrupted run for a
resumed one, and scipy / a hand-written Mann-Whitney statistic for the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from curl_agents.offline_data import SmoothedRandomPolicy, Transitions, TransitionSpec, transition_dataset
from curl_agents.offline_probe import OfflineProbe, OfflineProbeConfig, main, probe_r2
from ssl_shared.errors import UserError

# 3 episodes of 10 agent steps (80 env steps at cartpole's action repeat 8), 20 px renders
TINY = dict(task="cartpole-swingup", episodes=3, test_episodes=1, render_size=20, episode_length=80, seed=3)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> tuple[TransitionSpec, Path]:
    spec = TransitionSpec(**TINY)
    return spec, transition_dataset(spec, tmp_path_factory.mktemp("data"))


def tiny_config(tmp_path: Path, data_dir: Path, **overrides) -> OfflineProbeConfig:
    settings = dict(
        episodes=3, test_episodes=1, render_size=20, episode_length=80, data_seed=3, data_dir=str(data_dir),
        image_size=16, feature_dim=8, num_filters=8, batch_size=8, steps=6, log_every=1, checkpoint_every=100,
        threads=1, out=str(tmp_path / "run"),
    )  # fmt: skip
    settings.update(overrides)
    return OfflineProbeConfig(**settings)


# ----------------------------------------------------------------------------------------- the dataset


def test_split_is_by_episode_and_holds_every_transition(tiny_data):
    _, path = tiny_data
    data = Transitions.load(path)
    train, test = data.split("train"), data.split("test")
    assert set(data.episode[train]).isdisjoint(set(data.episode[test]))
    assert set(data.episode[test]) == {2} and set(data.episode[train]) == {0, 1}
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(data)))
    assert len(data) == 3 * 10 and list(data.t[data.episode == 1]) == list(range(10))


def test_frames_match_a_pixel_env_replaying_the_stored_actions(tiny_data):
    """The pixel agents' env (frame stack, action repeat, seed) sees exactly the stored stacks and rewards."""
    from curl_agents.envs import make_env

    spec, path = tiny_data
    data = Transitions.load(path)
    env = make_env(spec.task, image_size=spec.render_size, seed=spec.seed, episode_length=spec.episode_length)
    try:
        for episode in range(spec.episodes):
            obs, _ = env.reset()
            for i in np.flatnonzero(data.episode == episode):
                np.testing.assert_array_equal(data.observations(np.array([i]))[0], obs)
                obs, reward, terminated, _, _ = env.step(data.action[i])
                np.testing.assert_array_equal(data.observations(np.array([i]), next_obs=True)[0], obs)
                assert data.reward[i] == pytest.approx(reward, rel=1e-6) and data.done[i] == float(terminated)
    finally:
        env.close()


def test_stored_physics_states_rerender_to_the_last_frame_of_each_stack(tiny_data):
    from curl_agents.envs import make_env

    spec, path = tiny_data
    data = Transitions.load(path)
    env = make_env(spec.task, from_pixels=False, image_size=spec.render_size, seed=123)
    physics = env.unwrapped.physics
    try:
        for i in (0, 7, len(data) - 1):
            for state, stack in (
                (data.physics[i], data.obs_frames[i]),
                (data.next_physics[i], data.next_obs_frames[i]),
            ):
                with physics.reset_context():
                    physics.set_state(state)
                np.testing.assert_array_equal(env.render().transpose(2, 0, 1), data.frames[stack[-1]])
    finally:
        env.close()
    same_episode = data.episode[1:] == data.episode[:-1]
    np.testing.assert_array_equal(data.next_state[:-1][same_episode], data.state[1:][same_episode])
    np.testing.assert_array_equal(data.next_physics[:-1][same_episode], data.physics[1:][same_episode])


def test_datasets_are_cached_by_their_parameters_and_deterministic(tiny_data, tmp_path, monkeypatch):
    spec, path = tiny_data
    import curl_agents.offline_data as offline_data

    again = transition_dataset(spec, path.parent)  # cached: nothing is generated
    assert again == path
    monkeypatch.setattr(offline_data, "collect", lambda spec: pytest.fail("regenerated a cached dataset"))
    transition_dataset(spec, path.parent)
    monkeypatch.undo()
    fresh = transition_dataset(spec, tmp_path)  # the same parameters elsewhere: the same arrays
    with np.load(path) as a, np.load(fresh) as b:
        assert sorted(a.files) == sorted(b.files)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    other = TransitionSpec(**{**TINY, "seed": 4})
    assert other.key() != spec.key()


def test_smoothed_random_policy_is_the_ar1_recursion():
    beta = 0.7
    policy = SmoothedRandomPolicy(2, np.random.default_rng(5), beta)
    eps = np.random.default_rng(5).standard_normal((4, 2))
    u = [eps[0]]
    for k in range(1, 4):
        u.append(beta * u[-1] + np.sqrt(1 - beta**2) * eps[k])
    got = [policy(np.zeros(3)) for _ in range(4)]
    np.testing.assert_allclose(got, np.clip(u, -1, 1), rtol=1e-6)


def test_bad_dataset_and_run_settings_are_one_line_user_errors(tmp_path):
    cases = {
        "policy_path": (dict(policy="sb3", policy_path=str(tmp_path / "missing.zip")), "--policy-path"),
        "test": (dict(test_episodes=3), "--test-episodes 3"),
        "none": (dict(objective="none", steps=5), "--objective none trains nothing"),
        "crop": (dict(image_size=24), "--image-size 24"),
    }
    for name, (overrides, message) in cases.items():
        with pytest.raises(UserError, match=message) as info:
            OfflineProbe(tiny_config(tmp_path / name, tmp_path / "data", **overrides))
        assert "\n" not in str(info.value)
    assert not (tmp_path / "data").exists()  # rejected before any dataset is generated


# ----------------------------------------------------------------------------------------- the probe


def test_probe_r2_matches_ordinary_least_squares_by_hand():
    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(size=(200, 6)), rng.normal(size=(80, 6))
    w = rng.normal(size=(6, 3))
    train_y = train_x @ w + 0.5 * rng.normal(size=(200, 3)) + [1.0, -2.0, 3.0]
    test_y = test_x @ w + 0.5 * rng.normal(size=(80, 3)) + [1.0, -2.0, 3.0]
    test_y[:, 2] = 7.0  # constant on the test split: R^2 undefined there
    design = np.hstack([train_x, np.ones((200, 1))])
    coef, *_ = np.linalg.lstsq(design, train_y, rcond=None)
    predicted = np.hstack([test_x, np.ones((80, 1))]) @ coef
    expected = [1 - ((test_y[:, j] - predicted[:, j]) ** 2).sum() / ((test_y[:, j] - test_y[:, j].mean()) ** 2).sum()
                for j in range(2)]  # fmt: skip
    mean, per_dim = probe_r2(torch.from_numpy(train_x), train_y, torch.from_numpy(test_x), test_y, ridge=0.0)
    np.testing.assert_allclose(per_dim[:2], expected, rtol=1e-9)
    assert per_dim[2] is None and mean == pytest.approx(np.mean(expected), rel=1e-9)
    shrunk, _ = probe_r2(torch.from_numpy(train_x), train_y, torch.from_numpy(test_x), test_y, ridge=10.0)
    assert shrunk < mean  # a heavy penalty pulls the fit away from the least-squares optimum


# ----------------------------------------------------------------------------------------- the trainer


def test_target_ema_every_two_steps_before_the_objective_step(tmp_path, tiny_data):
    _, path = tiny_data
    trainer = OfflineProbe(tiny_config(tmp_path, path.parent, objective="byol"))
    calls: list[str] = []
    moved = trainer.objective.after_target_update
    update = trainer.objective.update
    trainer.objective.after_target_update = lambda: (calls.append("ema"), moved())[1]
    trainer.objective.update = lambda batch: (calls.append("step"), update(batch))[1]
    trainer.step()
    after_first = [p.detach().clone() for p in trainer.target_encoder.parameters()]
    trainer.step()  # odd step: the target stays
    for p, before in zip(trainer.target_encoder.parameters(), after_first):
        torch.testing.assert_close(p, before, rtol=0, atol=0)
    online = [p.detach().clone() for p in trainer.encoder.parameters()]
    trainer.step()  # even step: target <- 0.05 online + 0.95 target, before the objective's step
    for p, o, t in zip(trainer.target_encoder.parameters(), online, after_first):
        torch.testing.assert_close(p, 0.05 * o + 0.95 * t)
    for _ in range(2):
        trainer.step()
    assert calls == ["ema", "step", "step", "ema", "step", "step", "ema", "step"]


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, tiny_data):
    _, path = tiny_data
    straight = OfflineProbe(tiny_config(tmp_path / "a", path.parent, objective="moco")).fit()
    main(["--objective", "moco", *_flags(tiny_config(tmp_path / "b", path.parent)), "--stop-after", "4"])
    assert not (tmp_path / "b/run/probe.json").exists()
    main(["--resume", "--out", str(tmp_path / "b/run"), "--threads", "1"])
    resumed = json.loads((tmp_path / "b/run/probe.json").read_text())
    for key in ("loss", "accuracy", "linear_probe_r2", "linear_probe_r2_next"):
        assert resumed[key] == straight[key], key
    rows = (tmp_path / "b/run/train.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(s) for s in range(6)]


def _flags(config: OfflineProbeConfig) -> list[str]:
    skip = {"objective", "objective_kwargs", "policy_path", "action_repeat", "stop_after", "resume"}
    out = []
    for name, value in vars(config).items():
        if name not in skip and value is not None:
            flag = "--" + name.replace("_", "-")
            out += (
                [flag]
                if value is True
                else [f"--no-{name.replace('_', '-')}"]
                if value is False
                else [flag, str(value)]
            )
    return out


def test_none_probes_the_initial_encoder_every_objective_of_the_seed_starts_from(tmp_path, tiny_data):
    _, path = tiny_data
    none = OfflineProbe(tiny_config(tmp_path / "n", path.parent, objective="none", steps=0))
    curl = OfflineProbe(tiny_config(tmp_path / "c", path.parent, objective="curl"))
    for a, b in zip(none.encoder.state_dict().values(), curl.encoder.state_dict().values()):
        torch.testing.assert_close(a, b)
    results = none.fit()
    assert results["steps"] == 0 and "loss" not in results and len(results["r2_per_dimension"]["state"]) == 5


# ----------------------------------------------------------------------------------------- the grid


def test_tiny_grid_runs_and_reports_intervals_and_improvement_over_none(tmp_path, tiny_data, capsys):
    from experiments.grid.cli import main as grid_main

    _, path = tiny_data
    grid = tmp_path / "tiny_offline.toml"
    grid.write_text(
        'trainer = "curl_agents.offline_probe"\nreduced = true\n[fixed]\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in dict(
            episodes=3, test_episodes=1, render_size=20, episode_length=80, data_seed=3, data_dir=str(path.parent),
            image_size=16, feature_dim=8, num_filters=8, batch_size=8, steps=4, log_every=2, checkpoint_every=2).items())
        + '[axes]\nseed = [0, 1]\nobjective = [{label = "none", objective = "none", steps = 0}, "atc"]\n'
        '[report]\nseed = "seed"\nbaseline = "none"\n'
    )  # fmt: skip
    root, results = tmp_path / "runs", tmp_path / "results"
    grid_main(["run", str(grid), "--root", str(root), "--threads-per-job", "1"])
    assert "4 of 4 cells finished; failed: none" in capsys.readouterr().out
    grid_main(["report", str(grid), "--root", str(root), "--results", str(results), "--reps", "200"])
    text = (results / "tiny_offline" / "report.md").read_text()
    scores = {
        objective: [json.loads((root / f"tiny_offline/runs/seed={s}/objective={objective}/probe.json").read_text())
                    for s in range(2)]
        for objective in ("none", "atc")
    }  # fmt: skip
    row = text.split("| atc | 2 | ")[1].split("\n")[0].split(" | ")
    for column, key in ((0, "linear_probe_r2"), (2, "linear_probe_r2_next")):
        x = np.array([r[key] for r in scores["atc"]])
        y = np.array([r[key] for r in scores["none"]])
        half = stats.t.ppf(0.975, 1) * x.std(ddof=1) / np.sqrt(2)
        assert row[column] == f"{x.mean():.3f} [{x.mean() - half:.3f}, {x.mean() + half:.3f}]"
        mann_whitney = np.mean([(a > b) + 0.5 * (a == b) for a in x for b in y])
        assert row[column + 1].split(" [")[0] == f"{mann_whitney:.2f}"
    assert "cells: complete" in text and "| none | 2 | " in text
    assert all(r["steps"] == 4 for r in scores["atc"]) and all(r["steps"] == 0 for r in scores["none"])


def test_aux_offline_grid_covers_every_objective_on_both_datasets_with_one_setting_apart():
    from curl_agents.objectives import AUX_OBJECTIVES
    from experiments.grid.spec import load_grid, plan

    for protocol in (None, "cpu"):
        the_plan = plan(load_grid("aux_offline"), protocol)
        assert [a.name for a in the_plan.axes][0] == "seed"  # a partial run holds whole seeds
        assert {c.settings["objective"] for c in the_plan.cells} == set(AUX_OBJECTIVES) - {"ssl_method"}
        assert {c.labels["data"]: c.settings["policy"] for c in the_plan.cells} == {
            "random": "random",
            "trained": "sb3",
        }
        for cell in the_plan.cells:
            assert (cell.settings["steps"] == 0) == (cell.settings["objective"] == "none")
        trained = [c for c in the_plan.cells if c.settings["objective"] != "none" and c.labels["data"] == "random"]
        rest = [{k: v for k, v in c.settings.items() if k not in ("objective", "seed")} for c in trained]
        assert all(r == rest[0] for r in rest) and the_plan.grid.report.baseline == "none"
