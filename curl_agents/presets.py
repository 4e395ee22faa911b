"""Per-task settings of the six PlaNet benchmark tasks, as used by CURL.

Source: CURL paper (Srinivas, Laskin, Abbeel 2020, arXiv 2004.04136), appendix hyperparameter table:
action repeat 2 for finger-spin and walker-walk, 8 for cartpole-swingup, 4 otherwise; learning rate
2e-4 for cheetah-run and 1e-3 otherwise. The repeats for cartpole, reacher, ball_in_cup and cheetah are
also in the official code's (partly deleted) run scripts; see /work/shared/reference/curl_and_sb3.md §2.
Camera 0 everywhere, except quadruped which is filmed from camera 2 (the convention of the
DrQ/CURL DMC wrappers, because camera 0 does not follow the quadruped).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskPreset:
    """The settings a DMC task needs beyond its name.

    ``action_repeat`` is how many environment (physics control) steps one agent action lasts;
    ``lr`` is the learning rate the paper used for critic, actor and encoder on this task.
    """

    domain: str
    task: str
    action_repeat: int
    camera_id: int = 0
    lr: float = 1e-3


# CURL paper, appendix table (see the module docstring for the cross-checks against the code).
PLANET_PRESETS: dict[str, TaskPreset] = {
    "finger-spin": TaskPreset("finger", "spin", action_repeat=2),
    "cartpole-swingup": TaskPreset("cartpole", "swingup", action_repeat=8),
    "reacher-easy": TaskPreset("reacher", "easy", action_repeat=4),
    "cheetah-run": TaskPreset("cheetah", "run", action_repeat=4, lr=2e-4),
    "walker-walk": TaskPreset("walker", "walk", action_repeat=2),
    "ball_in_cup-catch": TaskPreset("ball_in_cup", "catch", action_repeat=4),
}


def default_camera(domain: str) -> int:
    """Camera used for pixel observations of ``domain``: 2 for quadruped, 0 otherwise."""
    return 2 if domain == "quadruped" else 0
