"""``python -m curl_agents.train`` end to end on a tiny cartpole config (40 px render, 32 px crop).

Episodes are shortened to 80 env steps (10 agent steps at action repeat 8). One test runs the real
DMC env; the others swap in a fake frame-stacked env (rendering dominates the CPU time otherwise).
Bad command lines run in forked children of one prepared Python process (:func:`run_forked`), whose
env and model constructors raise: each must exit 2 with one line on stderr before building anything.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from curl_agents.algorithms import CURL
from curl_agents.algorithms.pixel_sac import PixelSAC
from ssl_shared.run_dir import CheckpointStore

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--env", "cartpole-swingup", "--algo", "curl", "--aux", "curl", "--seed", "3", "--device", "cpu",
    "--image-size", "32", "--render-size", "40", "--feature-dim", "8", "--hidden-dim", "16", "--num-filters", "4",
    "--batch-size", "8", "--init-agent-steps", "5", "--buffer-size", "500", "--episode-env-steps", "80",
    "--eval-every-env-steps", "80", "--eval-episodes", "1", "--checkpoint-every-env-steps", "80", "--no-progress",
]  # fmt: skip


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


def fake_make_env(env_id, *, image_size, action_repeat, episode_length, seed, **_):
    """Stands in for ``curl_agents.envs.make_env``: the fake env with the episode in agent steps."""
    return FakeTaskEnv(image_size, episode_length // action_repeat, seed)


@pytest.fixture
def fake_env(monkeypatch):
    monkeypatch.setattr("curl_agents.envs.make_env", fake_make_env)


def train(argv):
    """``main(argv)``; returns the exit code (0 when it returns)."""
    from curl_agents.train import main

    try:
        main(argv)
    except SystemExit as exc:
        return exc.code
    return 0


def _policy_state(path) -> dict[str, torch.Tensor]:
    model = CURL.load(path, device="cpu")
    state = dict(model.policy.state_dict())
    state["log_alpha"] = model.log_alpha.detach()
    state.update({f"aux.{k}": v for k, v in model.aux_objective.state_dict().items()})
    return state


def assert_same_weights(a_path, b_path):
    a, b = _policy_state(a_path), _policy_state(b_path)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def eval_rows(out) -> list[dict[str, str]]:
    with (out / "eval.csv").open() as f:
        return list(csv.DictReader(f))


def without_wall_time(rows):
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


# ----------------------------------------------------------------------------------------- forked runs
DRIVER = textwrap.dedent(
    """
    import json, os, sys, traceback
    import torch
    torch.set_num_threads(1)
    request = json.loads(sys.stdin.read())
    exec(request["preamble"])
    import curl_agents.train as train_module
    results = []
    for job in request["jobs"]:
        pid = os.fork()
        if pid == 0:
            err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(err, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            code = 0
            try:
                exec(job.get("hook", ""))
                train_module.main(job["argv"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        listing = None
        if job.get("list"):
            root = job["list"]
            listing = sorted(os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root) for n in ds + fs)
        results.append({"code": os.waitstatus_to_exitcode(status), "listing": listing})
    print(json.dumps(results))
    """
)
FAKE_ENV_PREAMBLE = textwrap.dedent(
    """
    sys.path.insert(0, {tests!r})
    import curl_agents.envs
    from test_train_cli import fake_make_env
    curl_agents.envs.make_env = fake_make_env
    """
).format(tests=str(ROOT / "tests"))
NOTHING_BUILT_PREAMBLE = textwrap.dedent(
    """
    import curl_agents.envs
    from stable_baselines3.common.base_class import BaseAlgorithm

    def refuse(*args, **kwargs):
        raise RuntimeError("an env or a model was built before the input was rejected")

    curl_agents.envs.make_env = refuse
    BaseAlgorithm.__init__ = refuse
    """
)


def run_forked(jobs: list[dict], preamble: str, tmp_path: Path) -> list[dict]:
    """Run ``curl_agents.train.main(job["argv"])`` in a forked child per job (sequentially) of one Python
    process that ran ``preamble``; each child first runs ``job["hook"]``. Returns per job the exit code
    (negative: killed by that signal), its stderr and, with ``job["list"]``, the folder's files after it."""
    for i, job in enumerate(jobs):
        job["stderr"] = str(tmp_path / f"stderr_{i}.txt")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", DRIVER],
        input=json.dumps({"preamble": preamble, "jobs": jobs}),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    for job, report in zip(jobs, reports):
        report["stderr"] = Path(job["stderr"]).read_text()
    return reports


# ----------------------------------------------------------------------------------------- runs
def test_train_command_writes_every_output(tmp_path, capsys):
    out = tmp_path / "run"
    assert train([*TINY, "--env-steps", "160", "--out", str(out)]) == 0
    rows = eval_rows(out)
    assert [int(r["env_step"]) for r in rows] == [0, 80, 160]
    assert [int(r["agent_step"]) for r in rows] == [0, 10, 20]  # env steps / action repeat 8
    for name in ("learning_curve.png", "final_eval.gif", "final_model.zip", "config.json", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert list((out / "tb").rglob("events.out.tfevents*"))
    checkpoints = out / "checkpoints"
    assert (checkpoints / "latest.txt").read_text().strip() == "step-0000000160"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest.txt", "step-0000000160"]  # older ones pruned
    saved = checkpoints / "step-0000000160"
    assert sorted(p.name for p in saved.iterdir()) == ["manifest.json", "model.zip", "replay.pkl", "state.pt"]
    assert json.loads((saved / "manifest.json").read_text())["replay.pkl"] == (saved / "replay.pkl").stat().st_size
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # atomic writes leave no temporaries
    assert json.loads((out / "summary.json").read_text())["env_steps"] == 160

    from PIL import Image

    with Image.open(out / "final_eval.gif") as gif:  # rendered from the task camera, not the 40 px observation
        assert gif.size == (256, 256) and gif.n_frames == 11  # reset frame + 10 agent steps
    launches = json.loads((out / "launches.json").read_text())
    assert len(launches) == 1 and launches[0]["command"].startswith("python -m curl_agents.train --env cartpole")
    stderr = capsys.readouterr().err
    assert "at action repeat 8 (task preset" in stderr and "replay saved with every checkpoint" in stderr

    assert train([*TINY, "--env-steps", "160", "--out", str(out)]) == 2  # a second launch must not overwrite it
    assert "already holds a run" in capsys.readouterr().err


def test_tensorboard_scalars_are_written_against_env_steps(tmp_path, fake_env):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb_run"
    train([*TINY, "--env-steps", "160", "--out", str(out)])
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("eval/mean_return")] == [0, 80, 160]  # = eval.csv env_step
    agent_steps = events.Scalars("time/agent_steps")
    assert agent_steps and all(e.step == 8 * e.value for e in agent_steps)  # action repeat 8
    train_steps = [e.step for e in events.Scalars("train/critic_loss")]
    assert train_steps and all(step % 8 == 0 and 40 < step <= 160 for step in train_steps)  # from agent step 6
    assert max(e.step for tag in scalars for e in events.Scalars(tag)) == 160


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, fake_env, capsys):
    full, split = tmp_path / "full", tmp_path / "split"
    train([*TINY, "--env-steps", "320", "--out", str(full)])
    train([*TINY, "--env-steps", "160", "--out", str(split)])  # the replay is saved by default
    saved = CheckpointStore(split / "checkpoints").latest() / "replay.pkl"
    frame_bytes = 3 * 40 * 40  # TINY renders 40x40 RGB frames
    capacity = json.loads((split / "config.json").read_text())["buffer_size"]
    assert saved.stat().st_size < capacity * frame_bytes  # only the frames held, not the preallocated store
    printed = [line for line in capsys.readouterr().err.splitlines() if "replay saved" in line][-1]  # split's
    # 20 agent steps + 2 episode starts = 22 frames of 4800 B, 500 x 42 B of indices, the two spaces
    assert f"up to about {saved.stat().st_size / 2**20:.1f} MiB" in printed
    assert train(["--resume", "--env-steps", "320", "--out", str(split), "--no-progress"]) == 0
    assert_same_weights(full / "final_model.zip", split / "final_model.zip")
    assert without_wall_time(eval_rows(split)) == without_wall_time(eval_rows(full))
    assert [int(r["env_step"]) for r in eval_rows(split)] == [0, 80, 160, 240, 320]
    launches = json.loads((split / "launches.json").read_text())
    assert [(x["resume"], x.get("resumed_at_env_step"), x.get("replay")) for x in launches] == [
        (False, None, None),
        (True, 160, "restored"),
    ]
    assert train(["--resume", "--out", str(split), "--no-progress"]) == 2  # nothing left to do
    assert "is finished (summary.json at env step 320), so --env-steps 320" in capsys.readouterr().err


def test_resume_without_replay_needs_the_flag_and_is_recorded(tmp_path, fake_env, capsys):
    out = tmp_path / "no_replay"
    assert train([*TINY, "--env-steps", "160", "--no-save-replay", "--out", str(out)]) == 0
    assert not (CheckpointStore(out / "checkpoints").latest() / "replay.pkl").exists()
    capsys.readouterr()
    assert train(["--resume", "--env-steps", "320", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no replay buffer" in err and "--resume-without-replay" in err
    assert [int(r["env_step"]) for r in eval_rows(out)] == [0, 80, 160]  # nothing was run

    argv = ["--resume", "--resume-without-replay", "--env-steps", "320", "--out", str(out), "--no-progress"]
    assert train(argv) == 0
    rows = eval_rows(out)
    assert [int(r["env_step"]) for r in rows] == [0, 80, 160, 240, 320]
    assert [r["note"] for r in rows][:3] == ["", "", ""] and rows[4]["note"] == ""
    assert "replay restarted empty at env step 160" in rows[3]["note"]
    assert json.loads((out / "config.json").read_text())["resumed_without_replay_at_env_steps"] == [160]
    assert json.loads((out / "launches.json").read_text())[-1]["replay"] == "empty (--resume-without-replay)"


def test_an_earlier_versions_run_folder_resumes(tmp_path, fake_env):
    """checkpoints/latest/ (replaced in place) and config.json with the old names (steps, init_steps, 0 = preset)."""
    full, old = tmp_path / "full", tmp_path / "old"
    train([*TINY, "--env-steps", "240", "--out", str(full)])
    train([*TINY, "--env-steps", "160", "--out", str(old)])
    store = CheckpointStore(old / "checkpoints")
    store.latest().rename(old / "checkpoints" / "latest")
    (old / "checkpoints" / "latest.txt").unlink()
    (old / "checkpoints" / "latest" / "manifest.json").unlink()
    config = json.loads((old / "config.json").read_text())
    renames = {"env_steps": "steps", "init_agent_steps": "init_steps", "eval_every_env_steps": "eval_every",
               "checkpoint_every_env_steps": "checkpoint_every", "episode_env_steps": "episode_length"}  # fmt: skip
    legacy = {renames.get(k, k): v for k, v in config.items() if k not in ("sources", "precision", "video_size")}
    legacy.update(action_repeat=0, lr=0.0, torch_threads=0)
    legacy.pop("threads")
    (old / "config.json").write_text(json.dumps(legacy))
    rows = eval_rows(old)  # eval.csv had no note column
    with (old / "eval.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "note"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert train(["--resume", "--env-steps", "240", "--out", str(old), "--no-progress"]) == 0
    assert_same_weights(full / "final_model.zip", old / "final_model.zip")
    assert sorted(p.name for p in (old / "checkpoints").iterdir()) == ["latest.txt", "step-0000000240"]
    assert without_wall_time(eval_rows(old)) == without_wall_time(eval_rows(full))


def test_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, fake_env, capsys):
    original = PixelSAC.critic_loss

    def poisoned(self, views, action, target):
        loss = original(self, views, action, target)
        return loss * float("nan") if self._n_updates >= 12 else loss

    monkeypatch.setattr(PixelSAC, "critic_loss", poisoned)
    out = tmp_path / "nan"
    assert train([*TINY, "--env-steps", "320", "--out", str(out)]) == 3
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("python -m curl_agents.train: error: non-finite critic_loss (nan)")
    assert "gradient step 12" in err and "step-0000000080" in err and "Traceback" not in err
    message = (out / "FAILED.txt").read_text()
    assert "critic_loss" in message and "gradient step 12" in message
    saved = CURL.load(CheckpointStore(out / "checkpoints").latest() / "model.zip", device="cpu")
    # updates start after agent step 5: update 12 happens at agent step 18, after the checkpoint at 10
    assert saved.num_timesteps == 10 and all(torch.isfinite(p).all() for p in saved.policy.parameters())


class Killed(BaseException):
    """Stands for SIGKILL inside an in-process run (no handler of the command catches it)."""


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_stopped_before_its_summary_is_finished_by_resume_without_a_second_evaluation(
    tmp_path, fake_env, monkeypatch
):
    """summary.json comes after the final checkpoint; --resume from that checkpoint only writes the summary."""
    import curl_agents.train

    out, write = tmp_path / "stopped", curl_agents.train.atomic_write_json

    def killed_at_summary(path, obj):
        if Path(path).name == "summary.json":
            raise Killed
        write(path, obj)

    monkeypatch.setattr(curl_agents.train, "atomic_write_json", killed_at_summary)
    with pytest.raises(Killed):
        train([*TINY, "--env-steps", "160", "--out", str(out)])
    monkeypatch.setattr(curl_agents.train, "atomic_write_json", write)
    assert not (out / "summary.json").exists()
    assert CheckpointStore(out / "checkpoints").latest().name == "step-0000000160"  # written before the summary
    evaluated = (out / "eval.csv").read_bytes()
    assert train(["--resume", "--out", str(out), "--no-progress"]) == 0
    assert (out / "eval.csv").read_bytes() == evaluated  # no second final evaluation
    last = eval_rows(out)[-1]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["env_steps"], summary["final_mean_return"]) == (160, float(last["mean_return"]))
    assert int(last["env_step"]) == 160 and summary["agent_steps"] == 20


def test_resume_refuses_a_finished_run_whatever_checkpoint_it_holds(tmp_path, fake_env, monkeypatch, capsys):
    """A run folder with summary.json beside an older checkpoint (an earlier version wrote the summary before
    its final checkpoint): --resume must neither train nor evaluate its end again, and must change no file."""
    import curl_agents.train

    class KeepAll(CheckpointStore):
        def __init__(self, root, keep=1):
            super().__init__(root, keep=10)

    out = tmp_path / "finished"
    monkeypatch.setattr(curl_agents.train, "CheckpointStore", KeepAll)
    assert train([*TINY, "--env-steps", "160", "--out", str(out)]) == 0
    monkeypatch.setattr(curl_agents.train, "CheckpointStore", CheckpointStore)
    for step in (0, 160):  # leave the checkpoint at 80 alone, as the store keeps one
        shutil.rmtree(out / "checkpoints" / f"step-{step:010d}")
    (out / "checkpoints" / "latest.txt").write_text("step-0000000080\n")
    before = snapshot(out)
    capsys.readouterr()
    assert train(["--resume", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is finished (summary.json at env step 160)" in err
    assert snapshot(out) == before


# ----------------------------------------------------------------------------------------- bad input
def _prepared_runs(root: Path) -> dict[str, Path]:
    """Run folders the resume cases start from (fake env, in this process)."""
    import curl_agents.envs

    original = curl_agents.envs.make_env
    curl_agents.envs.make_env = fake_make_env
    try:
        done = root / "done"
        assert train([*TINY, "--env-steps", "80", "--out", str(done)]) == 0
        no_replay = root / "no_replay"
        assert train([*TINY, "--env-steps", "80", "--no-save-replay", "--out", str(no_replay)]) == 0
    finally:
        curl_agents.envs.make_env = original
    runs = {"done": done, "no_replay": no_replay}
    for name, file in (("bad_model", "model.zip"), ("bad_replay", "replay.pkl")):
        copy = root / name
        shutil.copytree(done, copy)
        path = CheckpointStore(copy / "checkpoints").latest() / file
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a copy cut short
        runs[name] = copy
    no_config = root / "no_config"
    shutil.copytree(done, no_config)
    (no_config / "config.json").unlink()
    runs["no_config"] = no_config
    (root / "a_file").write_text("x")
    (root / "empty").mkdir()
    return runs


def _case(name, argv, *needles):
    return pytest.param(argv, needles, id=name)


# (argv with {root} and {tiny}, strings stderr must contain). {root}/... folders come from _prepared_runs.
BAD_INPUTS = [
    _case("aux-kwargs list", ["--aux-kwargs", "[1, 2]"], "--aux-kwargs", "[1, 2]", "JSON object"),
    _case("aux-kwargs not json", ["--aux-kwargs", "{latent"], "--aux-kwargs", "not valid JSON"),
    _case("aux-kwargs key", ["--aux-kwargs", '{"latnt_dim": 3}'], "--aux-kwargs", "latnt_dim", "latent_dim"),
    _case("aux-kwargs lr", ["--aux-kwargs", '{"lr": 3}'], "--aux-kwargs", "'lr'", "head_tau"),
    _case("kwargs for none", ["--aux", "none", "--aux-kwargs", '{"x": 1}'], "--aux-kwargs", "'x'", "no options"),
    _case("ssl_method no method", ["--aux", "ssl_method"], "--aux-kwargs", "method", "denoising_ae"),
    _case("ssl_method option", ["--aux", "ssl_method", "--aux-kwargs", '{"method": "denoising_ae", "options": {"noise": 1}}'],
          "'noise'", "noise_std"),
    _case("ssl_method unknown", ["--aux", "ssl_method", "--aux-kwargs", '{"method": "dae"}'], "'dae'", "simclr"),
    _case("unknown env", ["--env", "cartpole-swingupp"], "--env", "cartpole-swingupp", "cartpole-swingup,"),
    _case("unknown algo", ["--algo", "curll"], "--algo", "curll", "state_sac"),
    _case("unknown aux", ["--aux", "cpc"], "--aux", "cpc", "byol"),
    _case("zero budget", ["--env-steps", "0"], "--env-steps", "0", ">= 1"),
    _case("negative warm-up", ["--init-agent-steps", "-5"], "--init-agent-steps", "-5", ">= 0"),
    _case("zero batch", ["--batch-size", "0"], "--batch-size", "0", ">= 1"),
    _case("zero replay", ["--buffer-size", "0"], "--buffer-size", "0", ">= 1"),
    _case("zero eval interval", ["--eval-every-env-steps", "0"], "--eval-every-env-steps", "0", ">= 1"),
    _case("interval off episode", ["--checkpoint-every-env-steps", "120"], "--checkpoint-every-env-steps", "120", "multiple"),
    _case("negative lr", ["--lr", "-0.001"], "--lr", "-0.001", "> 0"),
    _case("zero repeat", ["--action-repeat", "0"], "--action-repeat", "0", ">= 1"),
    _case("render < image", ["--render-size", "20"], "--render-size", "20", "--image-size 32"),
    _case("sac_ae with curl", ["--algo", "sac_ae", "--aux", "curl"], "--aux curl", "sac_ae", "reconstruction"),
    _case("rad with aux", ["--algo", "rad", "--aux", "byol"], "--aux byol", "rad", "none"),
    _case("state_sac with aux", ["--algo", "state_sac", "--aux", "curl"], "--aux curl", "state_sac", "none"),
    _case("bad device", ["--device", "gpu"], "--device", "'gpu'", "cpu"),
    _case("bf16 without support", ["--algo", "state_sac", "--aux", "none", "--precision", "bf16"], "--precision bf16", "fp32"),
    _case("unknown look", ["--look", "sepia"], "--look", "'sepia'", "restyled"),
    _case("colour views for states", ["--algo", "state_sac", "--aux", "none", "--color-augment", "random_conv"],
          "--color-augment", "state_sac", "none"),
    _case("fused without objective", ["--algo", "rad", "--aux", "none", "--fused-encoder-step"], "--fused-encoder-step", "--aux none"),
    _case("fused with double step", ["--fused-encoder-step", "--aux-kwargs", '{"official_double_step": true}'],
          "--fused-encoder-step", "official_double_step"),
    _case("compile a state agent", ["--algo", "state_sac", "--aux", "none", "--compile-encoders"],
          "--compile-encoders", "state_sac"),
    _case("unknown flag", ["--stepz", "3"], "--stepz"),
    _case("out is a file", ["--out", "{root}/a_file"], "--out", "a_file", "folder"),
    _case("out under a file", ["--out", "{root}/a_file/run"], "--out", "a_file/run", "not writable"),
    _case("new run over a run", ["--out", "{root}/done"], "--out", "done", "--resume"),
    _case("resume empty folder", ["--resume", "--out", "{root}/empty"], "--resume", "empty", "no checkpoint"),
    _case("resume missing folder", ["--resume", "--out", "{root}/nowhere"], "--resume", "nowhere", "no checkpoint"),
    _case("without-replay alone", ["--resume-without-replay"], "--resume-without-replay", "--resume"),
    _case("resume conflict", ["--resume", "--env-steps", "160", "--seed", "4", "--lr", "0.01", "--out", "{root}/done"],
          "config.json", "seed: saved 3, now 4", "lr: saved 0.001, now 0.01"),
    _case("resume truncated model", ["--resume", "--env-steps", "160", "--out", "{root}/bad_model"], "model.zip", "truncated"),
    _case("resume truncated replay", ["--resume", "--env-steps", "160", "--out", "{root}/bad_replay"], "replay.pkl", "truncated"),
    _case("resume no config", ["--resume", "--out", "{root}/no_config"], "config.json", "missing"),
    _case("resume no replay", ["--resume", "--env-steps", "160", "--out", "{root}/no_replay"], "replay", "--resume-without-replay"),
    _case("resume finished", ["--resume", "--out", "{root}/done"], "finished", "--env-steps 80", "larger --env-steps"),
]  # fmt: skip


@pytest.fixture(scope="module")
def bad_input_reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    _prepared_runs(root)
    jobs = []
    for param in BAD_INPUTS:
        argv = [a.replace("{root}", str(root)) for a in param.values[0]]
        if "--resume" not in argv:  # a new run: the tiny settings around the bad value
            argv = [*TINY, "--env-steps", "160", "--out", str(root / "new_run"), *argv]
        elif "--out" not in argv:
            argv = [*argv, "--out", str(root / "done")]
        jobs.append({"argv": argv})
    reports = run_forked(jobs, NOTHING_BUILT_PREAMBLE, root)
    return {param.id: (report, root) for param, report in zip(BAD_INPUTS, reports)}


@pytest.mark.parametrize(("argv", "needles"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_before_anything_is_built(request, bad_input_reports, argv, needles):
    report, root = bad_input_reports[request.node.callspec.id]
    err = report["stderr"]
    assert report["code"] == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("python -m curl_agents.train: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not (root / "new_run").exists()  # rejected before the run folder was made


def test_the_module_entry_point_reports_bad_input_on_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = ["--out", str(tmp_path / "x"), "--aux", "ssl_method"]
    command = [sys.executable, "-m", "curl_agents.train", *argv]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and '--aux ssl_method needs {"method": NAME}' in result.stderr
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------------- configuration
def _config(*flags: str):
    from curl_agents.run_config import build_parser, plan_from_args

    return plan_from_args(build_parser().parse_args([*flags, "--out", "unused"]))


@pytest.mark.parametrize(
    ("algo", "batch", "replay"),
    # SAC-AE train.py --batch_size 128, --replay_buffer_capacity 1e6; CURL repo command batch 128 for state SAC
    [("sac_ae", 128, 1_000_000), ("state_sac", 128, 100_000), ("drq", 512, 100_000)],
)
def test_each_algorithm_keeps_its_own_batch_and_replay_unless_set(algo, batch, replay):
    from curl_agents.run_config import model_kwargs

    plan = _config("--algo", algo)
    assert (plan.config.batch_size, plan.config.buffer_size) == (batch, replay)
    assert plan.sources["batch_size"] == f"{algo} constructor default"
    kwargs = model_kwargs(plan.config)
    assert (kwargs["batch_size"], kwargs["buffer_size"]) == (batch, replay)
    assert _config("--algo", algo, "--batch-size", "64").config.batch_size == 64


@pytest.mark.parametrize(("env", "repeat"), [("hopper-hop", 1), ("quadruped-walk", 1), ("cheetah-run", 4)])
def test_action_repeat_is_the_planet_one_or_1_and_says_so(env, repeat):
    plan = _config("--env", env)
    assert plan.config.action_repeat == repeat
    source = plan.sources["action_repeat"]
    assert ("PlaNet" in source) if repeat > 1 else ("no PlaNet preset" in source)


def test_presets_layer_under_flags_and_unset_values_resolve():
    demo = _config("--preset", "demo")
    cfg = demo.config
    assert (cfg.env, cfg.algo, cfg.aux, cfg.batch_size, cfg.env_steps) == (
        "cartpole-swingup",
        "curl",
        "curl",
        32,
        16_000,
    )
    assert demo.sources["batch_size"] == "preset demo" and demo.sources["lr"] == "curl constructor default"
    assert _config("--preset", "demo", "--env-steps", "8000").config.env_steps == 8000
    rad = _config("--algo", "rad").config
    assert rad.aux == "none" and rad.batch_size == 512 and rad.render_size == 100  # image 84 + RAD's crop margin 16
    cheetah = _config("--env", "cheetah-run").config
    assert cheetah.lr == 2e-4 and cheetah.action_repeat == 4  # CURL appendix table


def test_deprecated_flags_still_work_with_a_one_line_notice(capsys):
    from curl_agents.run_config import RunConfig, build_parser
    from ssl_shared.cli import explicit_values

    args = build_parser().parse_args(["--steps", "8000", "--init-steps", "7", "--torch-threads", "2", "--out", "x"])
    assert explicit_values(args, RunConfig) == {"env_steps": 8000, "init_agent_steps": 7, "threads": 2}
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "python -m curl_agents.train: note: --steps is deprecated; use --env-steps (same meaning)",
        "python -m curl_agents.train: note: --init-steps is deprecated; use --init-agent-steps (same meaning)",
        "python -m curl_agents.train: note: --torch-threads is deprecated; use --threads (same meaning)",
    ]


def test_every_config_field_is_a_flag_with_help():
    from curl_agents.run_config import RunConfig, build_parser

    text = " ".join(build_parser().format_help().split())
    for f in RunConfig.__dataclass_fields__.values():
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
    assert "env steps between evaluations" in text and "ENVIRONMENT STEPS" not in text


def test_precision_reaches_only_algorithms_that_take_it():
    from curl_agents.run_config import model_kwargs

    assert model_kwargs(_config("--precision", "fp32").config)["precision"] == "fp32"  # PixelSAC takes it
    state = _config("--algo", "state_sac", "--aux", "none", "--precision", "fp32").config
    assert "precision" not in model_kwargs(state)  # SB3's SAC has no bf16 path
    assert model_kwargs(_config("--fused-encoder-step").config)["fused_encoder_step"] is True
    assert model_kwargs(_config("--compile-encoders").config)["compile_encoders"] is True
    assert "compile_encoders" not in model_kwargs(_config().config)


def test_learning_curve_labels_env_steps_in_thousands(tmp_path):
    from curl_agents.callbacks import format_env_steps, learning_curve_figure

    assert [format_env_steps(v) for v in (0, 500, 4000, 12_500, 1_000_000, 1_500_000)] == [
        "0", "500", "4K", "12.5K", "1M", "1.5M",
    ]  # fmt: skip
    rows = [{"env_step": s, "mean_return": 1.0, "std_return": 0.0} for s in range(0, 16_001, 4000)]
    fig = learning_curve_figure(rows)
    fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    labels = [t.get_text() for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]
    assert labels and labels[0] == "0" and all(re.fullmatch(r"\d+(\.\d)?K", label) for label in labels[1:]), labels
