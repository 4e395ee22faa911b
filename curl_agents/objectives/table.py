"""The table of every auxiliary objective as markdown, read from the registry.

    python -m curl_agents.objectives.table --out docs/objectives.md

One row per entry of :data:`~curl_agents.objectives.AUX_OBJECTIVES`, in registry order: the name, the
class attributes ``summary``, ``second_input`` and ``citation``, and the objective's own options with
their defaults (:func:`~curl_agents.objectives.aux_objective_options`; ``lr`` and ``weight``, which every
objective takes, are listed once above the table). A test checks that the committed ``docs/objectives.md``
equals this output.
"""

from __future__ import annotations

import inspect

from curl_agents.objectives import AUX_OBJECTIVES, NO_OBJECTIVE_SUMMARY, aux_objective_options
from curl_agents.objectives.base import AuxObjective
from ssl_shared.markdown import format_value, generated_doc_main, markdown_table

COMMAND = "python -m curl_agents.objectives.table --out docs/objectives.md"
HEADER = ["name", "loss", "second input", "options (defaults)", "reference"]
#: Options of the base class, shared by every objective.
COMMON_OPTIONS = ("lr", "weight")
MISSING = "–"


def common_defaults() -> dict[str, object]:
    """The defaults of :data:`COMMON_OPTIONS`, read from :class:`AuxObjective`'s signature."""
    parameters = inspect.signature(AuxObjective.__init__).parameters
    return {name: parameters[name].default for name in COMMON_OPTIONS}


def options_cell(name: str) -> str:
    options = {k: v for k, v in aux_objective_options(name).items() if k not in COMMON_OPTIONS}
    return ", ".join(f"`{k}`={format_value(v)}" for k, v in options.items()) or MISSING


def row(name: str, cls: type[AuxObjective] | None) -> list[str]:
    if cls is None:
        return [f"`{name}`", NO_OBJECTIVE_SUMMARY, MISSING, MISSING, MISSING]
    return [f"`{name}`", cls.summary, cls.second_input, options_cell(name), cls.citation]


def render() -> str:
    """The whole markdown document."""
    common = ", ".join(f"`{k}`={format_value(v)}" for k, v in common_defaults().items())
    lines = [
        "# Auxiliary objectives",
        "",
        f"Generated from `curl_agents.objectives.AUX_OBJECTIVES` by `{COMMAND}`; do not edit by hand "
        "(`tests/test_aux.py` checks that this file equals the regenerated output). Loss, second input and "
        "reference are attributes of each objective class (`summary`, `second_input`, `citation`); options are "
        "its keyword arguments (`--aux NAME --aux-kwargs '{...}'`, or `aux_kwargs` of the algorithms). Every "
        f"objective also takes {common} (the algorithms' `aux_lr` and `aux_weight`; the train command sets the "
        "objective's `lr` to `--lr`). Inputs: `obs` is the critic's augmented view, `obs_pos` a second augmented "
        "view of the same observation, `next_obs` the augmented successor.",
        "",
    ]
    lines += markdown_table(HEADER, [row(name, cls) for name, cls in AUX_OBJECTIVES.items()])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    generated_doc_main("python -m curl_agents.objectives.table", __doc__.split("\n")[0], render, argv)


if __name__ == "__main__":
    main()
