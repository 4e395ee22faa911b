"""RAD (Laskin et al., NeurIPS 2020): pixel SAC with random-crop augmentation and no auxiliary loss."""

from __future__ import annotations

from typing import Any

from curl_agents.algorithms.curl import CURL


class RAD(CURL):
    """CURL's views (independent random crops of obs and next_obs, center crop to act) without any
    auxiliary objective: the augmentation alone. RAD takes no ``aux`` argument; RAD plus an
    objective is :class:`~curl_agents.algorithms.CURL` with ``aux=...``."""

    def __init__(self, policy: Any, env: Any, **kwargs: Any) -> None:
        aux = kwargs.pop("aux", "none")
        if aux not in (None, "none"):
            raise ValueError(f"RAD has no auxiliary objective (got aux={aux!r}); use CURL(aux={aux!r}) instead")
        super().__init__(policy, env, aux="none", **kwargs)
