"""Colour-augmented critic views (curl_agents.algorithms.color_augment), the DMControl-GB robustness baselines."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
import torch

from curl_agents.algorithms import RAD, PixelSAC
from curl_agents.algorithms.color_augment import add_color_views
from curl_agents.algorithms.pixel_sac import TrainViews
from curl_agents.envs import make_env
from ssl_shared.augment import color_jitter, random_conv

TINY_POLICY = dict(feature_dim=8, hidden_dim=16, num_filters=4, num_layers=2)


def _views(seed: int = 0) -> TrainViews:
    g = torch.Generator().manual_seed(seed)
    obs = [torch.randint(0, 256, (4, 6, 12, 12), generator=g).float() for _ in range(2)]
    return TrainViews(obs=obs, obs_pos=obs[1], next_obs=[torch.randint(0, 256, (4, 6, 12, 12), generator=g).float()])


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("random_conv", lambda x, g: random_conv(x, 3, max_value=255.0, generator=g)),
        ("color_jitter", lambda x, g: color_jitter(x, 0.4, 0.4, 0.4, 0.5, max_value=255.0, generator=g)),
    ],
)
def test_critic_views_gain_colour_augmented_copies_and_targets_stay_clean(name, reference) -> None:
    views = _views()
    out = add_color_views(views, name, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the same draws, in the documented order: one per critic view
    expected = [reference(view, g) for view in views.obs]
    assert len(out.obs) == 4
    for got, original in zip(out.obs[:2], views.obs):
        assert got is original
    for got, want in zip(out.obs[2:], expected):
        torch.testing.assert_close(got, want)
    assert not torch.equal(out.obs[2], views.obs[0])
    assert out.next_obs is views.next_obs and out.obs_pos is views.obs_pos
    assert add_color_views(views, "none", torch.Generator()) is views
    with pytest.raises(ValueError, match="allowed: none, random_conv, color_jitter"):
        add_color_views(views, "sepia", torch.Generator())


def test_an_agent_with_colour_augmentation_trains_on_twice_the_views_and_saves_the_option(tmp_path) -> None:
    env = make_env("cartpole-swingup", image_size=32, episode_length=40, seed=0)
    model = RAD(
        "CnnPolicy",
        env,
        image_size=28,
        buffer_size=50,
        learning_starts=8,
        batch_size=4,
        seed=0,
        policy_kwargs=TINY_POLICY,
        color_augment="random_conv",
    )
    seen = []
    critic_loss = model.critic_loss
    model.critic_loss = lambda views, action, target: seen.append(len(views)) or critic_loss(views, action, target)
    model.learn(12)
    assert seen and set(seen) == {2}  # RAD's one crop + its colour copy, at every gradient step
    del model.critic_loss
    model.save(tmp_path / "agent.zip")
    assert RAD.load(tmp_path / "agent.zip").color_augment == "random_conv"
    plain = PixelSAC("CnnPolicy", env, buffer_size=10, policy_kwargs=TINY_POLICY, image_size=32)
    assert plain.color_augment == "none"
    assert np.isfinite(float(model.log_alpha.detach()))
    with pytest.raises(ValueError, match="color_augment 'sepia' unknown"):
        PixelSAC("CnnPolicy", env, buffer_size=10, color_augment="sepia")
