"""Published DeepMind Control scores (mean, std over seeds) used as references by the experiment scripts.

Source: Srinivas et al. 2020, "CURL", Table 1 (reproduced in the lecture notes
``shared/seeds/001_e3cea04d649049b8.txt``). Steps are environment steps (after action repeat).
"""

from __future__ import annotations

PLANET_TASKS: tuple[str, ...] = (
    "finger-spin",
    "cartpole-swingup",
    "reacher-easy",
    "cheetah-run",
    "walker-walk",
    "ball_in_cup-catch",
)

# CURL_TABLE[budget][method][task] = (mean, std)
CURL_TABLE: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "100k": {
        "CURL": dict(zip(PLANET_TASKS, [(767, 56), (582, 146), (538, 233), (299, 48), (403, 24), (769, 43)])),
        "PlaNet": dict(zip(PLANET_TASKS, [(136, 216), (297, 39), (20, 50), (138, 88), (224, 48), (0, 0)])),
        "Dreamer": dict(zip(PLANET_TASKS, [(341, 70), (326, 27), (314, 155), (235, 137), (277, 12), (246, 174)])),
        "SAC+AE": dict(zip(PLANET_TASKS, [(740, 64), (311, 11), (274, 14), (267, 24), (394, 22), (391, 82)])),
        "Pixel SAC": dict(zip(PLANET_TASKS, [(179, 66), (419, 40), (145, 30), (197, 15), (42, 12), (312, 63)])),
        "State SAC": dict(zip(PLANET_TASKS, [(811, 46), (835, 22), (746, 25), (616, 18), (891, 82), (746, 91)])),
    },
    "500k": {
        "CURL": dict(zip(PLANET_TASKS, [(926, 45), (841, 45), (929, 44), (518, 28), (902, 43), (959, 27)])),
        "PlaNet": dict(zip(PLANET_TASKS, [(561, 284), (475, 71), (210, 390), (305, 131), (351, 58), (460, 380)])),
        "Dreamer": dict(zip(PLANET_TASKS, [(796, 183), (762, 27), (793, 164), (570, 253), (897, 49), (879, 87)])),
        "SAC+AE": dict(zip(PLANET_TASKS, [(884, 128), (735, 63), (627, 58), (550, 34), (847, 48), (794, 58)])),
        "Pixel SAC": dict(zip(PLANET_TASKS, [(179, 166), (419, 40), (145, 30), (197, 15), (42, 12), (312, 63)])),
        "State SAC": dict(zip(PLANET_TASKS, [(923, 21), (848, 15), (923, 24), (795, 30), (948, 54), (974, 33)])),
    },
}

BUDGET_ENV_STEPS = {"100k": 100_000, "500k": 500_000}
