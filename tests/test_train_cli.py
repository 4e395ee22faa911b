"""``python -m curl_agents.train`` end to end on a tiny cartpole config (40 px render, 32 px crop).

Episodes are shortened to 80 env steps (10 agent steps at action repeat 8). One test runs the real
DMC env; the others swap in a fake frame-stacked env (rendering dominates the CPU time otherwise).
"""

from __future__ import annotations

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from curl_agents.algorithms import CURL
from curl_agents.algorithms.pixel_sac import PixelSAC
from curl_agents.train import build_parser, config_from_args, main

TINY = ["--env", "cartpole-swingup", "--algo", "curl", "--aux", "curl", "--seed", "3", "--device", "cpu",
        "--image-size", "32", "--render-size", "40", "--feature-dim", "8", "--hidden-dim", "16", "--num-filters", "4",
        "--batch-size", "8", "--init-steps", "5", "--buffer-size", "500", "--episode-length", "80",
        "--eval-every", "80", "--eval-episodes", "1", "--checkpoint-every", "80", "--no-progress"]


class FakeTaskEnv(gym.Env):
    """Seeded random frames stacked like the DMC env; ``reset(seed)`` makes an episode reproducible."""

    def __init__(self, size: int, episode_length: int, seed: int) -> None:
        self.observation_space = spaces.Box(0, 255, (9, size, size), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.size, self.episode_length = size, episode_length
        self.rng = np.random.default_rng(seed)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t = 0
        first = self.rng.integers(0, 256, (3, self.size, self.size), dtype=np.uint8)
        self.frames = [first] * 3
        return np.concatenate(self.frames), {}

    def step(self, action):
        self.t += 1
        self.frames = [*self.frames[1:], self.rng.integers(0, 256, (3, self.size, self.size), dtype=np.uint8)]
        reward = float(1.0 - abs(float(action[0]) - 0.5))
        return np.concatenate(self.frames), reward, False, self.t >= self.episode_length, {}


@pytest.fixture
def fake_env(monkeypatch):
    def make(cfg, seed):
        return FakeTaskEnv(cfg.render_size, cfg.episode_length // 8, seed)

    monkeypatch.setattr("curl_agents.train.make_task_env", make)


def _policy_state(path) -> dict[str, torch.Tensor]:
    model = CURL.load(path, device="cpu")
    state = dict(model.policy.state_dict())
    state["log_alpha"] = model.log_alpha.detach()
    state.update({f"aux.{k}": v for k, v in model.aux_objective.state_dict().items()})
    return state


def test_train_command_writes_every_output(tmp_path):
    out = tmp_path / "run"
    main([*TINY, "--steps", "160", "--out", str(out)])
    with (out / "eval.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["env_step"]) for r in rows] == [0, 80, 160]
    assert [int(r["agent_step"]) for r in rows] == [0, 10, 20]  # env steps / action repeat 8
    for name in ("learning_curve.png", "final_eval.gif", "final_model.zip", "config.json", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "tb").rglob("events.out.tfevents*"))
    assert (out / "checkpoints" / "latest" / "model.zip").exists()
    assert not list((out / "checkpoints").glob(".*tmp*"))  # atomic writes leave no temporaries
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 160
    with pytest.raises(FileExistsError):
        main([*TINY, "--steps", "160", "--out", str(out)])


def test_tensorboard_scalars_are_written_against_env_steps(tmp_path, fake_env):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb_run"
    main([*TINY, "--steps", "160", "--out", str(out)])
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("eval/mean_return")] == [0, 80, 160]  # = eval.csv env_step
    agent_steps = events.Scalars("time/agent_steps")
    assert agent_steps and all(e.step == 8 * e.value for e in agent_steps)  # action repeat 8
    train_steps = [e.step for e in events.Scalars("train/critic_loss")]
    assert train_steps and all(step % 8 == 0 and 40 < step <= 160 for step in train_steps)  # from agent step 6
    assert max(e.step for tag in scalars for e in events.Scalars(tag)) == 160


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, fake_env):
    full, split = tmp_path / "full", tmp_path / "split"
    main([*TINY, "--steps", "320", "--save-replay", "--out", str(full)])
    main([*TINY, "--steps", "160", "--save-replay", "--out", str(split)])
    saved = split / "checkpoints" / "latest" / "replay.pkl"
    frame_bytes = 3 * 40 * 40  # TINY renders 40x40 RGB frames
    capacity = json.loads((split / "config.json").read_text())["buffer_size"]
    assert saved.stat().st_size < capacity * frame_bytes  # only the frames held, not the preallocated store
    main(["--resume", "--steps", "320", "--out", str(split), "--no-progress"])
    a, b = _policy_state(full / "final_model.zip"), _policy_state(split / "final_model.zip")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    with (split / "eval.csv").open() as f:
        assert [int(r["env_step"]) for r in csv.DictReader(f)] == [0, 80, 160, 240, 320]


def test_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, fake_env):
    original = PixelSAC.critic_loss

    def poisoned(self, views, action, target):
        loss = original(self, views, action, target)
        return loss * float("nan") if self._n_updates >= 12 else loss

    monkeypatch.setattr(PixelSAC, "critic_loss", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(SystemExit) as exc:
        main([*TINY, "--steps", "320", "--out", str(out)])
    assert exc.value.code == 3
    message = (out / "FAILED.txt").read_text()
    assert "critic_loss" in message and "gradient step 12" in message
    saved = CURL.load(out / "checkpoints" / "latest" / "model.zip", device="cpu")
    # updates start after agent step 5: update 12 happens at agent step 18, after the checkpoint at 10
    assert saved.num_timesteps == 10 and all(torch.isfinite(p).all() for p in saved.policy.parameters())


@pytest.mark.parametrize(
    ("flag", "value", "listed"),
    [("--env", "cartpole-swingupp", "cartpole-swingup"), ("--algo", "curll", "state_sac"), ("--aux", "cpc", "byol")],
)
def test_unknown_names_fail_before_any_work(tmp_path, capsys, flag, value, listed):
    out = tmp_path / "bad"
    args = [*TINY, "--out", str(out)]
    args[args.index(flag) + 1] = value
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert value in err and listed in err
    assert not out.exists()


def test_step_convention_presets_and_validation():
    parser = build_parser()
    assert "ENVIRONMENT STEPS" in parser.format_help()
    demo = config_from_args(parser.parse_args(["--preset", "demo", "--out", "x"]))
    assert (demo.env, demo.algo, demo.aux, demo.batch_size) == ("cartpole-swingup", "curl", "curl", 32)
    assert config_from_args(parser.parse_args(["--preset", "demo", "--steps", "8000", "--out", "x"])).steps == 8000
    rad = config_from_args(parser.parse_args(["--algo", "rad", "--out", "x"]))
    assert rad.aux == "none" and rad.batch_size == 512
    with pytest.raises(ValueError, match="multiple of the episode length"):
        config_from_args(parser.parse_args(["--eval-every", "1500", "--out", "x"]))
    with pytest.raises(ValueError, match="takes no auxiliary"):
        config_from_args(parser.parse_args(["--algo", "rad", "--aux", "curl", "--out", "x"]))
