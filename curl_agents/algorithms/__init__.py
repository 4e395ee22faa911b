"""stable-baselines3-native pixel SAC algorithms (CURL, RAD, DrQ, pixel SAC) and the state-SAC baseline.

Every algorithm is chosen by name in ``ALGORITHMS`` (used by ``python -m curl_agents.train --algo``).
"""

from __future__ import annotations

from curl_agents.algorithms.curl import CURL
from curl_agents.algorithms.drq import DrQ
from curl_agents.algorithms.pixel_sac import PixelSAC, TrainViews
from curl_agents.algorithms.rad import RAD
from curl_agents.algorithms.state_sac import StateSAC, state_sac

ALGORITHMS = {"curl": CURL, "rad": RAD, "drq": DrQ, "pixel_sac": PixelSAC, "state_sac": StateSAC}

__all__ = ["ALGORITHMS", "CURL", "RAD", "DrQ", "PixelSAC", "StateSAC", "TrainViews", "state_sac"]
