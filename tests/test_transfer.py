"""scv-transfer (cut_translation.transfer): frames, translators, evaluation, statistics and the command end to end."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curl_agents.algorithms import ALGORITHMS
from curl_agents.envs import make_env
from cut_translation.transfer import pipeline
from cut_translation.transfer.agents import agent_settings
from cut_translation.transfer.frames import SmoothedRandomPolicy, render_state, rollout
from cut_translation.transfer.stats import bootstrap_mean, bootstrap_share
from ssl_shared.errors import UserError

TINY_POLICY = dict(feature_dim=8, hidden_dim=16, num_filters=4, num_layers=2)
TINY_TRANSLATOR = {"ngf": 4, "ndf": 4, "n_blocks": 2, "nce_layers": [0, 4, 8, 12, 13], "num_patches": 16, "mlp_dim": 16}


def make_agent_run(folder: Path, algo: str = "pixel_sac", **kwargs) -> Path:
    """A fresh (untrained) agent saved as a curl_agents run folder: config.json + final_model.zip."""
    env = make_env("cartpole-swingup", image_size=32, episode_length=40, seed=0)
    model = ALGORITHMS[algo](
        "CnnPolicy", env, image_size=32, buffer_size=10, policy_kwargs=TINY_POLICY, seed=0, **kwargs
    )
    folder.mkdir(parents=True)
    model.save(folder / "final_model.zip")
    config = {
        "env": "cartpole-swingup",
        "algo": algo,
        "image_size": 32,
        "render_size": 0,
        "action_repeat": 0,
        "frame_stack": 3,
        "episode_length": 40,
        "seed": 0,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _args(tmp: Path, agent: Path, baseline: Path) -> list[str]:
    return [
        "--agents", str(agent), "--baselines", str(baseline), "--target-look", "color_shift_1.0",
        "--out", str(tmp / "run"), "--frames-per-look", "6", "--test-pairs", "3", "--iters", "2",
        "--translator-options", json.dumps(TINY_TRANSLATOR), "--eval-episodes", "2", "--bootstrap", "200",
        "--samples", "2", "--device", "cpu", "--no-progress", "--label", "test run", "--collect-policy", "agent",
    ]  # fmt: skip


@pytest.mark.render
def test_pipeline_end_to_end_and_resume_skips_finished_stages(tmp_path: Path, capsys) -> None:
    agent = make_agent_run(tmp_path / "agent")
    baseline = make_agent_run(tmp_path / "baseline", algo="drq", color_augment="color_jitter")
    pipeline.main(_args(tmp_path, agent, baseline))
    run = tmp_path / "run"
    manifest = json.loads((run / "frames" / "manifest.json").read_text())
    assert manifest["counts"] == {"trainA": 6, "trainB": 6, "testA": 3, "testB": 3}
    assert Image.open(run / "frames" / "trainA" / "000000.png").size == (32, 32)
    results = json.loads((run / "results.json").read_text())
    rows = {row["condition"]: row for row in results["rows"]}
    assert list(rows) == [
        "train look",
        "target look",
        "target look + cut",
        "baseline: train look",
        "baseline: target look",
    ]
    assert rows["train look"]["share"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert all(row["episodes"] == 2 and row["agents"] == 1 for row in rows.values())
    assert rows["target look + cut"]["translate_ms"] > 0 and rows["target look"]["translate_ms"] is None
    # every condition plays the same episodes
    saved = [json.loads(p.read_text()) for p in sorted((run / "eval").rglob("*.json"))]
    assert len(saved) == 5 and len({tuple(s["seeds"]) for s in saved}) == 1
    grid = Image.open(run / "samples" / "cut.png")
    assert grid.size == (3 * 32 + 2 * 2, 2 * 32 + 2)  # 2 rows of input | translated | training look
    report = (run / "report.md").read_text()
    assert "| target look + cut | 1 |" in report and "test run" in report and (run / "returns.png").is_file()
    assert list((run / "tb").glob("events.*")) and json.loads((run / "launches.json").read_text())
    assert "target look + cut: return" in capsys.readouterr().out

    outputs = [
        *sorted((run / "eval").rglob("*.json")),
        run / "frames" / "manifest.json",
        run / "translators" / "cut" / "summary.json",
    ]
    stamps = [p.stat().st_mtime_ns for p in outputs]
    pipeline.main(["--out", str(run), "--resume", "--no-progress", "--bootstrap", "300"])  # report settings may change
    assert [p.stat().st_mtime_ns for p in outputs] == stamps  # nothing was collected, trained or played again
    assert json.loads((run / "results.json").read_text())["bootstrap"] == 300
    with pytest.raises(SystemExit) as info:
        pipeline.main(["--out", str(run), "--resume", "--iters", "3"])
    assert info.value.code == 2 and "iters: saved 2, now 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pipeline.main(_args(tmp_path, agent, baseline))  # a new run refuses the folder
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.render
def test_paired_test_frames_render_the_same_state() -> None:
    source = make_env("cartpole-swingup", image_size=32, episode_length=40, seed=0)
    other = make_env("cartpole-swingup", image_size=32, episode_length=40, seed=9)  # another env, its own state
    obs, _ = source.reset(seed=1)
    for action in np.random.default_rng(0).uniform(-1, 1, (3, 1)).astype(np.float32):
        obs = source.step(action)[0]
    np.testing.assert_array_equal(render_state(other, source.unwrapped.physics.get_state()), obs[-3:])


@pytest.mark.render
def test_rollout_keeps_every_nth_frame_across_episodes() -> None:
    env = make_env("cartpole-swingup", image_size=32, episode_length=24, seed=0)  # 3 agent steps: 4 frames
    constant = lambda obs: np.full((1,), 0.5, np.float32)  # noqa: E731
    frames = list(rollout(env, [constant], 3, iter([11, 12, 13]), stride=2))
    expected = []
    for seed in (11, 12):  # written out: frames 0 and 2 of each episode
        obs, _ = env.reset(seed=seed)
        episode = [obs[-3:]] + [env.step(constant(None))[0][-3:] for _ in range(3)]
        expected += episode[::2]
    assert len(frames) == 3
    for got, want in zip(frames, expected):
        np.testing.assert_array_equal(got, want)


def test_smoothed_random_policy_follows_its_formula() -> None:
    policy = SmoothedRandomPolicy((2,), np.random.default_rng(5))
    rng, previous = np.random.default_rng(5), np.zeros(2)
    for _ in range(6):
        previous = np.clip(0.7 * previous + 0.3 * 2.0 * rng.standard_normal(2), -1.0, 1.0)
        np.testing.assert_allclose(policy(None), previous, rtol=1e-6)
    policy.reset()
    np.testing.assert_allclose(policy(None), np.clip(0.3 * 2.0 * rng.standard_normal(2), -1.0, 1.0), rtol=1e-6)


def test_bootstrap_intervals() -> None:
    constant = np.full((3, 5), 7.0)
    assert bootstrap_mean(constant, n=100).to_dict() == {"value": 7.0, "low": 7.0, "high": 7.0}
    # one agent: the ordinary bootstrap of a mean, close to the normal interval mean +- 1.96 sd / sqrt(n)
    episodes = np.random.default_rng(0).normal(100.0, 10.0, size=(1, 400))
    estimate = bootstrap_mean(episodes, n=4000, seed=1)
    half = 1.96 * episodes.std(ddof=1) / np.sqrt(400)
    assert estimate.value == pytest.approx(episodes.mean())
    assert estimate.low == pytest.approx(episodes.mean() - half, abs=0.15)
    assert estimate.high == pytest.approx(episodes.mean() + half, abs=0.15)
    # seeds vary more than episodes: the two-level interval is wider than pooling the episodes
    seeds = np.random.default_rng(2).normal(0.0, 20.0, size=(4, 1)) + np.random.default_rng(3).normal(100, 1, (4, 20))
    nested = bootstrap_mean(seeds, n=2000)
    pooled = bootstrap_mean(seeds.reshape(1, -1), n=2000)
    assert nested.high - nested.low > 3 * (pooled.high - pooled.low)
    # paired shares: an exact half of every episode keeps exactly half
    reference = np.random.default_rng(4).uniform(100, 900, size=(3, 6))
    assert bootstrap_share(0.5 * reference, reference, n=500).to_dict() == pytest.approx(
        {"value": 0.5, "low": 0.5, "high": 0.5}
    )


def test_agent_settings_resolve_like_the_train_command() -> None:
    settings = agent_settings(
        {"env": "cartpole-swingup", "algo": "curl", "image_size": 84, "render_size": 0, "action_repeat": 0}, "x"
    )
    assert (settings.render_size, settings.action_repeat, settings.look, settings.frame_stack) == (100, 8, "default", 3)
    drq = agent_settings({"env": "walker-walk", "algo": "drq", "image_size": 84, "look": "restyled"}, "x")
    assert (drq.render_size, drq.action_repeat, drq.look) == (84, 2, "restyled")
    with pytest.raises(UserError, match="lacks 'algo'"):
        agent_settings({"env": "cartpole-swingup", "image_size": 84}, "x")
    with pytest.raises(UserError, match="'state_sac' is not a pixel agent"):
        agent_settings({"env": "cartpole-swingup", "algo": "state_sac", "image_size": 84}, "x")


def test_command_line_errors_are_one_line(tmp_path: Path, capsys) -> None:
    cases = [
        (
            ["--agents", "a", "--out", str(tmp_path / "o"), "--target-look", "sepia"],
            "--target-look: invalid choice: 'sepia'",
        ),
        (["--out", str(tmp_path / "o")], "--agents: none given"),
        (["--agents", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], "not found"),
        (["--out", str(tmp_path / "none"), "--resume"], "holds no scv-transfer run"),
        (["--agents", "a", "--out", str(tmp_path / "o"), "--models", "cut", "cut"], "names a model twice"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as info:
            pipeline.main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in err and err.count("\n") == 1, (argv, err)
