"""Effective defaults of the algorithms, read from their code: constructor signatures (walked along the
class hierarchy), ``policy_defaults`` over the policy's own defaults, ``task_learning_rates`` and
``render_margin``. ``python -m curl_agents.train`` resolves per-task settings through these functions,
and ``curl_agents.defaults_table`` prints them.
"""

from __future__ import annotations

import inspect
from typing import Any

#: Constructor arguments that are plumbing, not hyperparameters.
NOT_HYPERPARAMETERS = frozenset(
    {
        "self",
        "policy",
        "env",
        "replay_buffer_class",
        "replay_buffer_kwargs",
        "stats_window_size",
        "tensorboard_log",
        "policy_kwargs",
        "verbose",
        "seed",
        "device",
        "_init_setup_model",
        "action_noise",
        "optimize_memory_usage",
        "use_sde",
        "sde_sample_freq",
        "use_sde_at_warmup",
        "monitor_wrapper",
        "sde_support",
        "support_multi_env",
        "supported_action_spaces",
    }
)
#: Policy constructor arguments that are not network settings.
NOT_POLICY_SETTINGS = frozenset(
    {
        "self",
        "observation_space",
        "action_space",
        "lr_schedule",
        "image_size",
        "optimizer_class",
        "optimizer_kwargs",
        "use_sde",
    }
)


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Every keyword argument of ``cls(...)`` with its default: the first class along the MRO whose
    ``__init__`` names the argument gives it (subclasses that restate a default win)."""
    defaults: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.default is param.empty:
                continue
            if param.name not in NOT_HYPERPARAMETERS:
                defaults.setdefault(param.name, param.default)
    if "aux" in defaults and defaults["aux"] is None and hasattr(cls, "default_aux"):
        defaults["aux"] = cls.default_aux
    return dict(sorted(defaults.items()))


def policy_settings(cls: type) -> dict[str, Any]:
    """Network settings the algorithm builds by default: its ``policy_defaults`` over the defaults of
    :class:`~curl_agents.policies.CurlSACPolicy` (pixel algorithms; SB3's MLP policy for state SAC)."""
    from curl_agents.algorithms.pixel_sac import PixelSAC
    from curl_agents.policies import CurlSACPolicy

    settings: dict[str, Any] = {}
    if issubclass(cls, PixelSAC):
        for param in inspect.signature(CurlSACPolicy.__init__).parameters.values():
            if param.name not in NOT_POLICY_SETTINGS and param.default is not param.empty:
                settings[param.name] = param.default
    settings.update(getattr(cls, "policy_defaults", {}))
    return dict(sorted(settings.items()))


def task_learning_rate(cls: type, env_id: str) -> float:
    """``learning_rate`` of ``cls`` on task ``env_id``: its ``task_learning_rates`` entry, else the default."""
    return float(getattr(cls, "task_learning_rates", {}).get(env_id, constructor_defaults(cls)["learning_rate"]))


def render_size(cls: type, image_size: int) -> int:
    """Rendered side for a network input of ``image_size``: ``image_size + cls.render_margin``."""
    return image_size + int(getattr(cls, "render_margin", 0))
