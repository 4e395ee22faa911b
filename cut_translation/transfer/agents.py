"""The trained agents a transfer run tests: where they are, how they were trained, how to load and house them.

An agent is a ``curl_agents.train`` run folder (``config.json`` + ``final_model.zip``) or a bare model
``.zip`` with its settings given separately (the same keys as a run's ``config.json``).
:func:`agent_settings` is the ONLY place that reads those keys, so a renamed key is fixed here once.
Agents are loaded with their algorithm class's ``load`` (any pixel algorithm of
``curl_agents.algorithms.ALGORITHMS``) and housed in ``curl_agents.envs.make_env`` envs built exactly as
for training, in whichever look is asked for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from ssl_shared.errors import UserError

MODEL_FILE = "final_model.zip"
CONFIG_FILE = "config.json"
#: Keys of the settings of a bare model zip (``--agent-settings``) that have no default.
REQUIRED_KEYS = ("env", "algo", "image_size")


@dataclass(frozen=True)
class AgentSettings:
    """How an agent saw its task in training: everything needed to rebuild its observations."""

    env: str  # dm_control 'domain-task'
    algo: str  # a name of curl_agents.algorithms.ALGORITHMS
    look: str  # the look it was trained in (curl_agents.looks)
    render_size: int  # rendered frame side (the policy crops to its network input itself)
    action_repeat: int
    frame_stack: int
    episode_length: int  # environment steps


@dataclass(frozen=True)
class Agent:
    """One trained agent: its model file, its settings and a short name for tables."""

    model_path: Path
    settings: AgentSettings
    name: str


def agent_settings(config: Mapping[str, Any], source: str) -> AgentSettings:
    """Settings from a ``curl_agents.train`` ``config.json`` dict (or ``--agent-settings``), resolved as the
    train command resolves them: ``render_size`` unset = ``image_size`` + the algorithm's render margin,
    ``action_repeat`` unset = the task preset; ``look`` absent = ``default``. ``source`` names the origin in errors."""
    from curl_agents.algorithms import ALGORITHMS
    from curl_agents.algorithms.defaults import render_size
    from curl_agents.looks import check_look
    from curl_agents.presets import PLANET_PRESETS
    from curl_agents.run_config import legacy_to_current

    config = legacy_to_current(dict(config))  # field names of earlier versions -> today's
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise UserError(
            f"{source}: lacks {', '.join(map(repr, missing))}; allowed: the keys of a curl_agents run's config.json"
        )
    algo, env = str(config["algo"]), str(config["env"])
    if algo not in ALGORITHMS or algo == "state_sac":
        pixel = [name for name in ALGORITHMS if name != "state_sac"]
        raise UserError(f"{source}: algo {algo!r} is not a pixel agent; allowed: {', '.join(pixel)}")
    preset = PLANET_PRESETS.get(env)
    return AgentSettings(
        env=env,
        algo=algo,
        look=check_look(str(config.get("look", "default")), flag=f"{source}: look"),
        render_size=int(config.get("render_size", 0) or render_size(ALGORITHMS[algo], int(config["image_size"]))),
        action_repeat=int(config.get("action_repeat", 0) or (preset.action_repeat if preset else 1)),
        frame_stack=int(config.get("frame_stack", 3)),
        episode_length=int(config.get("episode_env_steps") or 1000),
    )


def resolve_agent(entry: str, zip_settings: Mapping[str, Any], flag: str = "--agents") -> Agent:
    """A run folder (its ``config.json`` and ``final_model.zip``) or a model ``.zip`` (settings: ``zip_settings``)."""
    path = Path(entry)
    if path.is_dir():
        config_path, model_path = path / CONFIG_FILE, path / MODEL_FILE
        for needed in (config_path, model_path):
            if not needed.is_file():
                raise UserError(f"{flag} {path}: no {needed.name}; allowed: a finished curl_agents run folder")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"{flag} {config_path}: not valid JSON ({err.msg})") from err
        return Agent(model_path, agent_settings(config, f"{flag} {config_path}"), path.name)
    if path.is_file() and path.suffix == ".zip":
        if not zip_settings:
            raise UserError(f"{flag} {path}: a model zip needs --agent-settings (JSON with env, algo, image_size)")
        return Agent(path, agent_settings(zip_settings, "--agent-settings"), path.stem)
    raise UserError(f"{flag} {path}: not found; allowed: a curl_agents run folder or a model .zip")


def check_same_task(agents: Sequence[Agent], flag: str, fields: Sequence[str]) -> None:
    """``UserError`` unless every agent has the same values of the settings ``fields``."""
    first = agents[0]
    for agent in agents[1:]:
        for name in fields:
            a, b = getattr(first.settings, name), getattr(agent.settings, name)
            if a != b:
                raise UserError(
                    f"{flag}: {first.name} has {name} {a!r} but {agent.name} has {b!r}; allowed: agents of one "
                    "task, look and observation format"
                )


def load_policy(agent: Agent, device: str) -> Any:
    """The agent's model, loaded by its algorithm class for acting (``predict``; no replay buffer to speak of)."""
    from curl_agents.algorithms import ALGORITHMS

    try:
        model = ALGORITHMS[agent.settings.algo].load(agent.model_path, device=device, custom_objects={"buffer_size": 1})
    except (ValueError, KeyError, RuntimeError, OSError) as err:
        raise UserError(f"--agents {agent.model_path}: cannot load it as {agent.settings.algo} ({err})") from err
    expected = (3 * agent.settings.frame_stack, agent.settings.render_size, agent.settings.render_size)
    if tuple(model.observation_space.shape) != expected:
        raise UserError(
            f"--agents {agent.model_path}: the model observes {tuple(model.observation_space.shape)}, the settings "
            f"give {expected} (frame_stack x 3, render_size, render_size); fix the settings"
        )
    return model


def make_agent_env(settings: AgentSettings, look: str, seed: int) -> gym.Env:
    """The pixel env the agent was trained in, in look ``look``."""
    from curl_agents.envs import make_env

    return make_env(
        settings.env,
        image_size=settings.render_size,
        action_repeat=settings.action_repeat,
        frame_stack=settings.frame_stack,
        seed=seed,
        episode_length=settings.episode_length,
        look=look,
    )
