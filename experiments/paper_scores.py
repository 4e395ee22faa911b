"""Published DeepMind Control scores (mean, std over seeds) on the six PlaNet tasks, beside which reports put ours.

Steps are environment steps (after action repeat). Each column names its source:

- CURL, PlaNet, Dreamer, SAC+AE, SLACv1, Pixel SAC, State SAC: Srinivas, Laskin, Abbeel 2020, "CURL:
  Contrastive Unsupervised Representations for Reinforcement Learning", arXiv 2004.04136, Table 1
  (SLACv1 reports no cartpole-swingup and reacher-easy scores).
- DrQ (K=2, M=2): Kostrikov, Yarats, Fergus 2020, "Image Augmentation Is All You Need: Regularizing Deep
  Reinforcement Learning from Pixels", arXiv 2004.13649, Table 1.
- RAD: Laskin et al. 2020, "Reinforcement Learning with Augmented Data", arXiv 2004.14990, Table 1. These
  values are transcribed from a secondary summary and not yet checked against the paper; reports mark them.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The six PlaNet tasks in the column order of the published tables: the tasks of
#: ``curl_agents.presets.PLANET_PRESETS``, written out here so that reports need not import the agents (and
#: torch); ``tests/test_experiments.py`` checks that the two lists are equal.
PLANET_TASKS: tuple[str, ...] = (
    "finger-spin",
    "cartpole-swingup",
    "reacher-easy",
    "cheetah-run",
    "walker-walk",
    "ball_in_cup-catch",
)

BUDGET_ENV_STEPS = {"100k": 100_000, "500k": 500_000}

Score = tuple[float, float]


def _row(*scores: Score | None) -> dict[str, Score]:
    return {task: s for task, s in zip(PLANET_TASKS, scores) if s is not None}


# CURL_TABLE[budget][method][task] = (mean, std): CURL paper, Table 1.
CURL_TABLE: dict[str, dict[str, dict[str, Score]]] = {
    "100k": {
        "CURL": _row((767, 56), (582, 146), (538, 233), (299, 48), (403, 24), (769, 43)),
        "PlaNet": _row((136, 216), (297, 39), (20, 50), (138, 88), (224, 48), (0, 0)),
        "Dreamer": _row((341, 70), (326, 27), (314, 155), (235, 137), (277, 12), (246, 174)),
        "SAC+AE": _row((740, 64), (311, 11), (274, 14), (267, 24), (394, 22), (391, 82)),
        "SLACv1": _row((693, 141), None, None, (319, 56), (361, 73), (512, 110)),
        "Pixel SAC": _row((179, 66), (419, 40), (145, 30), (197, 15), (42, 12), (312, 63)),
        "State SAC": _row((811, 46), (835, 22), (746, 25), (616, 18), (891, 82), (746, 91)),
    },
    "500k": {
        "CURL": _row((926, 45), (841, 45), (929, 44), (518, 28), (902, 43), (959, 27)),
        "PlaNet": _row((561, 284), (475, 71), (210, 390), (305, 131), (351, 58), (460, 380)),
        "Dreamer": _row((796, 183), (762, 27), (793, 164), (570, 253), (897, 49), (879, 87)),
        "SAC+AE": _row((884, 128), (735, 63), (627, 58), (550, 34), (847, 48), (794, 58)),
        "SLACv1": _row((673, 92), None, None, (640, 19), (842, 51), (852, 71)),
        "Pixel SAC": _row((179, 166), (419, 40), (145, 30), (197, 15), (42, 12), (312, 63)),
        "State SAC": _row((923, 21), (848, 15), (923, 24), (795, 30), (948, 54), (974, 33)),
    },
}

DRQ_TABLE: dict[str, dict[str, Score]] = {
    "100k": _row((901, 104), (759, 92), (601, 213), (344, 67), (612, 164), (913, 53)),
    "500k": _row((938, 103), (868, 10), (942, 71), (660, 96), (921, 45), (963, 9)),
}

RAD_TABLE: dict[str, dict[str, Score]] = {
    "100k": _row((856, 73), (828, 27), (826, 219), (447, 88), (504, 191), (840, 179)),
    "500k": _row((947, 101), (863, 9), (955, 71), (728, 71), (918, 16), (974, 12)),
}

CURL_CITATION = "Srinivas et al. 2020, CURL, arXiv 2004.04136, Table 1"


@dataclass(frozen=True)
class PublishedColumn:
    """One published method's scores: ``scores[budget][task] = (mean, std)``."""

    name: str
    citation: str
    scores: dict[str, dict[str, Score]]
    checked: bool = True  # False: transcribed from a secondary source, not yet checked against the paper
    ours: str | None = None  # the algorithm of this suite that reimplements it (``curl_agents.train --algo``)


PUBLISHED: tuple[PublishedColumn, ...] = (
    PublishedColumn("CURL", CURL_CITATION, {b: t["CURL"] for b, t in CURL_TABLE.items()}, ours="curl"),
    PublishedColumn("PlaNet", CURL_CITATION, {b: t["PlaNet"] for b, t in CURL_TABLE.items()}),
    PublishedColumn("Dreamer", CURL_CITATION, {b: t["Dreamer"] for b, t in CURL_TABLE.items()}),
    PublishedColumn("SAC+AE", CURL_CITATION, {b: t["SAC+AE"] for b, t in CURL_TABLE.items()}),
    PublishedColumn("SLACv1", CURL_CITATION, {b: t["SLACv1"] for b, t in CURL_TABLE.items()}),
    PublishedColumn("Pixel SAC", CURL_CITATION, {b: t["Pixel SAC"] for b, t in CURL_TABLE.items()}, ours="pixel_sac"),
    PublishedColumn("State SAC", CURL_CITATION, {b: t["State SAC"] for b, t in CURL_TABLE.items()}, ours="state_sac"),
    PublishedColumn("DrQ (K=2, M=2)", "Kostrikov et al. 2020, DrQ, arXiv 2004.13649, Table 1", DRQ_TABLE, ours="drq"),
    PublishedColumn("RAD", "Laskin et al. 2020, RAD, arXiv 2004.14990, Table 1", RAD_TABLE, checked=False, ours="rad"),
)

PUBLISHED_SETS: dict[str, tuple[PublishedColumn, ...]] = {"dmc_planet": PUBLISHED}
"""Named sets of published columns a grid file may ask its report to show (``[report] published``)."""


def budget_key(env_steps: int) -> str | None:
    """``100000 -> "100k"``; None for a budget no paper reports."""
    for key, steps in BUDGET_ENV_STEPS.items():
        if steps == env_steps:
            return key
    return None
