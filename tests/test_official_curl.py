"""The dmc2gym stand-in used to run the official CURL code (experiments/official_curl_shim) sees the same
environment as our agents: same frames, rewards and episode end as ``curl_agents.envs.make_env`` for the
same seed and actions, so a reference run of the official code is comparable with ours."""

import numpy as np
import pytest

from curl_agents.envs import make_env  # first: sets MUJOCO_GL before dm_control is imported
from experiments.official_curl_shim import dmc2gym

SIZE, REPEAT, EPISODE = 32, 8, 80  # 10 agent steps per episode


def test_stand_in_dmc2gym_matches_make_env_frames_rewards_and_time_limit():
    ours = make_env("cartpole-swingup", image_size=SIZE, action_repeat=REPEAT, episode_length=EPISODE, seed=4)
    theirs = dmc2gym.make(
        "cartpole", "swingup", seed=4, height=SIZE, width=SIZE, frame_skip=REPEAT, episode_length=EPISODE
    )
    assert theirs._max_episode_steps == EPISODE // REPEAT
    assert theirs.action_space.shape == ours.action_space.shape
    stack, _ = ours.reset()
    np.testing.assert_array_equal(theirs.reset(), stack[-3:])
    actions = np.random.default_rng(0).uniform(-1, 1, size=(EPISODE // REPEAT, 1)).astype(np.float32)
    for t, action in enumerate(actions):
        stack, reward, terminated, truncated, _ = ours.step(action)
        frame, their_reward, done, _ = theirs.step(action)
        np.testing.assert_array_equal(frame, stack[-3:])
        assert their_reward == pytest.approx(reward, rel=1e-12, abs=1e-12)
        last = t == len(actions) - 1
        assert (done, truncated, terminated) == (last, last, False)


def test_stand_in_dmc2gym_refuses_state_observations():
    with pytest.raises(ValueError, match="from_pixels=False"):
        dmc2gym.make("cartpole", "swingup", from_pixels=False)


def test_official_eval_log_is_read_in_env_steps_with_the_mean_over_episodes(tmp_path):
    from experiments.run_official_curl import read_eval_log

    log = tmp_path / "eval.log"  # the official Logger's JSON lines; "step" counts agent steps
    log.write_text(
        '{"episode": 0.0, "episode_reward": 60.5, "eval_time": 40.8, "mean_episode_reward": 60.5, '
        '"best_episode_reward": 62.1, "step": 0}\n'
        '{"episode": 16.0, "episode_reward": 210.0, "eval_time": 41.0, "mean_episode_reward": 210.0, '
        '"best_episode_reward": 301.5, "step": 1250}\n'
    )
    rows = read_eval_log(log)
    assert [(r["env_step"], r["agent_step"]) for r in rows] == [(0, 0), (10_000, 1250)]  # action repeat 8
    assert [(r["mean_return"], r["max_return"]) for r in rows] == [(60.5, 62.1), (210.0, 301.5)]
