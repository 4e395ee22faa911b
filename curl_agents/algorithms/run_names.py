"""TensorBoard run names after the algorithm's class, as stable-baselines3's own algorithms do."""

from __future__ import annotations

from typing import Any, TypeVar

from stable_baselines3.common.type_aliases import MaybeCallback

SelfNamed = TypeVar("SelfNamed", bound="RunsNamedAfterClass")


class RunsNamedAfterClass:
    """Mixin placed before an SB3 algorithm class: ``learn(tb_log_name=None)`` names the TensorBoard run
    after the class (``"CURL"``, ``"DrQ"``, ``"StateSAC"``, ...; SB3's SAC would say ``"SAC"``); an explicit
    ``tb_log_name`` wins."""

    def learn(
        self: SelfNamed,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfNamed:
        learn: Any = super().learn  # type: ignore[misc]
        return learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=type(self).__name__ if tb_log_name is None else tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
