"""curl_agents: CURL-style pixel SAC agents for DeepMind Control as stable-baselines3 algorithms.

    from curl_agents import CURL, make_env
    model = CURL("CnnPolicy", make_env("cartpole-swingup", seed=1), batch_size=128, seed=1)
    model.learn(12_500)  # SB3 counts AGENT steps: 12,500 x action repeat 8 = 100K env steps

Importing the package registers the gymnasium ids (``curl_agents/<domain>-<task>-v0`` and
``...-state-v0``) from a task list written in ``curl_agents.envs``; it does not import dm_control,
MuJoCo or PyOpenGL. Those are imported when the first env is built, after torchvision (and with it
torch._dynamo and triton): importing triton after dm_control's EGL renderer segfaults.
"""

from curl_agents.algorithms import ALGORITHMS, CURL, RAD, DrQ, PixelSAC, SacAE, StateSAC, state_sac
from curl_agents.envs import make_env, register_envs
from curl_agents.objectives import AUX_OBJECTIVES, AuxBatch, AuxObjective, aux_objective_options, make_aux_objective
from curl_agents.policies import CnnPolicy, CurlSACPolicy

register_envs()

__all__ = [
    "ALGORITHMS",
    "AUX_OBJECTIVES",
    "CURL",
    "RAD",
    "AuxBatch",
    "AuxObjective",
    "CnnPolicy",
    "CurlSACPolicy",
    "DrQ",
    "PixelSAC",
    "SacAE",
    "StateSAC",
    "aux_objective_options",
    "make_aux_objective",
    "make_env",
    "register_envs",
    "state_sac",
]
