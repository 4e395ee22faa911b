"""curl_agents: CURL-style pixel SAC agents for DeepMind Control as stable-baselines3 algorithms.

    from curl_agents import CURL, make_env
    model = CURL("CnnPolicy", make_env("cartpole-swingup", seed=1), batch_size=128, seed=1)
    model.learn(12_500)  # SB3 counts AGENT steps: 12,500 x action repeat 8 = 100K env steps

Import order matters: the torch side (torchvision -> torch._dynamo -> triton) is imported before
dm_control, because importing triton after dm_control's EGL renderer segfaults on this stack.
"""

from curl_agents.algorithms import ALGORITHMS, CURL, RAD, DrQ, PixelSAC, SacAE, StateSAC, state_sac  # noqa: I001 (order)
from curl_agents.policies import CnnPolicy, CurlSACPolicy
from curl_agents.envs import make_env, register_envs

register_envs()  # gymnasium ids curl_agents/<domain>-<task>-v0 and ...-state-v0

__all__ = [
    "ALGORITHMS",
    "CURL",
    "RAD",
    "CnnPolicy",
    "CurlSACPolicy",
    "DrQ",
    "PixelSAC",
    "SacAE",
    "StateSAC",
    "make_env",
    "register_envs",
    "state_sac",
]
