"""Per-task settings of the six PlaNet benchmark tasks, shared by every algorithm.

Action repeat 2 for finger-spin and walker-walk, 8 for cartpole-swingup, 4 otherwise: the PlaNet
benchmark protocol, as the CURL paper (Srinivas, Laskin, Abbeel 2020, arXiv 2004.04136) lists it in
its appendix table. The same repeats are in the CURL code's (partly deleted) run scripts for
cartpole, reacher, ball_in_cup and cheetah, and in DrQ's benchmark runs (``denisyarats/drq``
``data/dmc_planet_bench.csv``: evaluations every 2000 agent steps fall every 16K env steps on
cartpole, 8K on ball_in_cup, reacher and cheetah, 4K on finger and walker; ``README.md``: "python
train.py env=cartpole_swingup batch_size=512 action_repeat=8"). SAC-AE (arXiv 1910.01741) uses the
same protocol. Camera 0 everywhere, except quadruped which is filmed from camera 2 (the convention
of the DrQ/CURL DMC wrappers, because camera 0 does not follow the quadruped).

Learning rates are not task facts but an algorithm's choice: each algorithm class declares its
``task_learning_rates`` (CURL/RAD/pixel SAC: 2e-4 for cheetah-run; DrQ, SAC-AE, state SAC: one lr).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskPreset:
    """The settings a DMC task needs beyond its name.

    ``action_repeat`` is how many environment (physics control) steps one agent action lasts.
    """

    domain: str
    task: str
    action_repeat: int
    camera_id: int = 0


# PlaNet benchmark action repeats (see the module docstring for the sources).
PLANET_PRESETS: dict[str, TaskPreset] = {
    "finger-spin": TaskPreset("finger", "spin", action_repeat=2),
    "cartpole-swingup": TaskPreset("cartpole", "swingup", action_repeat=8),
    "reacher-easy": TaskPreset("reacher", "easy", action_repeat=4),
    "cheetah-run": TaskPreset("cheetah", "run", action_repeat=4),
    "walker-walk": TaskPreset("walker", "walk", action_repeat=2),
    "ball_in_cup-catch": TaskPreset("ball_in_cup", "catch", action_repeat=4),
}


def default_camera(domain: str) -> int:
    """Camera used for pixel observations of ``domain``: 2 for quadruped, 0 otherwise."""
    return 2 if domain == "quadruped" else 0
