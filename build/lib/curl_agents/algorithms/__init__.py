"""stable-baselines3-native pixel SAC algorithms (CURL, RAD, DrQ, SAC-AE, pixel SAC) and the state-SAC baseline.

Every algorithm is chosen by name in ``ALGORITHMS`` (used by ``python -m curl_agents.train --algo``).
Each class declares its defaults in its constructor signature (with citations) and, as class
attributes, what the train command resolves per task: ``policy_defaults``, ``task_learning_rates``
and (pixel algorithms) ``render_margin``; ``curl_agents.defaults_table`` prints them all.
"""

from __future__ import annotations

from curl_agents.algorithms.curl import CURL
from curl_agents.algorithms.drq import DrQ
from curl_agents.algorithms.pixel_sac import PixelSAC, TrainViews
from curl_agents.algorithms.rad import RAD
from curl_agents.algorithms.sac_ae import SacAE
from curl_agents.algorithms.state_sac import StateSAC, state_sac

ALGORITHMS = {
    "curl": CURL,
    "rad": RAD,
    "drq": DrQ,
    "sac_ae": SacAE,
    "pixel_sac": PixelSAC,
    "state_sac": StateSAC,
}

__all__ = ["ALGORITHMS", "CURL", "RAD", "DrQ", "PixelSAC", "SacAE", "StateSAC", "TrainViews", "state_sac"]
