"""The effective defaults of every algorithm as a markdown table, read from the code.

    python -m curl_agents.defaults_table --out docs/algorithm_defaults.md

Three sections: the constructor defaults (``ALGORITHMS[name](policy, env)``), the network settings
they build, and what ``python -m curl_agents.train --algo NAME --env TASK`` (no other flags) runs on
each PlaNet task, listed where it differs from the constructor defaults or is a setting of the
command only (action repeat, render size). Everything is computed by
:mod:`curl_agents.algorithms.defaults` and the train command's own resolution functions; a test
checks that the committed ``docs/algorithm_defaults.md`` equals this output.
"""

from __future__ import annotations

from typing import Any

from curl_agents.algorithms import ALGORITHMS
from curl_agents.algorithms.defaults import constructor_defaults, policy_settings
from curl_agents.objectives import aux_objective_options
from curl_agents.presets import PLANET_PRESETS
from ssl_shared.markdown import format_value, generated_doc_main, markdown_table

#: Constructor arguments whose ``None`` default stands for another argument's value (see their docstrings).
DEFAULT_FROM = {"alpha_lr": "learning_rate", "initial_updates": "learning_starts"}
MISSING = "–"


def effective_constructor_defaults(cls: type) -> dict[str, Any]:
    """Constructor defaults with ``None`` placeholders resolved (``DEFAULT_FROM``) and the default
    auxiliary objective's options (``aux.<option>``: the objective's defaults under the algorithm's
    ``default_aux_kwargs``)."""
    values = constructor_defaults(cls)
    for name, source in DEFAULT_FROM.items():
        if name in values and values[name] is None:
            values[name] = values[source]
    values.pop("aux_kwargs", None)
    aux = values.get("aux")
    if aux is not None:
        options = {**aux_objective_options(aux), **getattr(cls, "default_aux_kwargs", {})}
        options.pop("lr", None)  # aux_lr
        options.pop("weight", None)  # aux_weight
        values.update({f"aux.{k}": v for k, v in options.items()})
    return values


def cli_settings(name: str, task: str) -> dict[str, Any]:
    """What ``python -m curl_agents.train --algo NAME --env TASK`` builds: constructor defaults under
    the command's arguments, network settings prefixed ``policy.``, plus ``action_repeat``,
    ``render_size`` (pixel algorithms) and ``frame_stack``."""
    from curl_agents.run_config import (
        algorithm_class,
        build_parser,
        config_from_args,
        model_kwargs,
        resolved_action_repeat,
        resolved_render_size,
    )

    cfg = config_from_args(build_parser().parse_args(["--algo", name, "--env", task, "--out", "unused"]))
    cls = algorithm_class(cfg)
    kwargs = model_kwargs(cfg)
    values = effective_constructor_defaults(cls)
    policy = {**policy_settings(cls), **kwargs.pop("policy_kwargs", {})}
    aux_kwargs = kwargs.pop("aux_kwargs", {})
    kwargs.pop("seed", None)
    values.update(kwargs)
    for source_name, source in DEFAULT_FROM.items():  # a None default follows its source argument
        if constructor_defaults(cls).get(source_name, 0) is None:
            values[source_name] = values[source]
    values.update({f"aux.{k}": v for k, v in aux_kwargs.items()})
    values.update({f"policy.{k}": v for k, v in policy.items()})
    values["action_repeat"] = resolved_action_repeat(cfg)
    if name != "state_sac":
        values["render_size"] = resolved_render_size(cfg)
    values["frame_stack"] = cfg.frame_stack
    return values


def render() -> str:
    """The whole markdown document."""
    names = list(ALGORITHMS)
    constructor = {name: effective_constructor_defaults(cls) for name, cls in ALGORITHMS.items()}
    policy = {name: policy_settings(cls) for name, cls in ALGORITHMS.items()}
    lines = [
        "# Effective defaults of the algorithms",
        "",
        "Generated from the code by `python -m curl_agents.defaults_table --out docs/algorithm_defaults.md`; "
        "do not edit by hand (`tests/test_algorithms.py` checks that this file equals the regenerated output). "
        "The citations of every default are in the constructor signatures (`curl_agents/algorithms/*.py`). "
        f"`{MISSING}`: not a setting of that algorithm. Steps are agent steps (`learning_starts`) and "
        "transitions (`buffer_size`).",
        "",
        "## Constructor defaults: `ALGORITHMS[name](policy, env)`",
        "",
    ]
    keys = sorted({key for values in constructor.values() for key in values})
    rows = [
        [f"`{key}`", *(format_value(constructor[n][key]) if key in constructor[n] else MISSING for n in names)]
        for key in keys
    ]
    lines += markdown_table(["setting", *names], rows)
    lines += ["", "## Network defaults (`policy_kwargs`)", ""]
    keys = sorted({key for values in policy.values() for key in values})
    rows = [
        [f"`{key}`", *(format_value(policy[n][key]) if key in policy[n] else MISSING for n in names)] for key in keys
    ]
    lines += markdown_table(["setting", *names], rows)
    lines += [
        "",
        "## `python -m curl_agents.train --algo NAME --env TASK` (no other flags)",
        "",
        "Settings where the command differs from the constructor defaults on some PlaNet task, and the "
        "command's own settings (action repeat, render size, frame stack). Settings not given on the command "
        "line take the algorithm's own defaults (batch size, replay capacity, random warm-up steps, network); "
        "the command adds the task's PlaNet action repeat, the algorithm's learning rate for the task "
        "(`task_learning_rates`) and its render size (`render_margin`).",
    ]
    tasks = list(PLANET_PRESETS)
    for name in names:
        per_task = {task: cli_settings(name, task) for task in tasks}
        base = {**constructor[name], **{f"policy.{k}": v for k, v in policy[name].items()}}
        keys = [
            key for key in per_task[tasks[0]] if key not in base or any(per_task[t][key] != base[key] for t in tasks)
        ]
        rows = [
            [
                f"`{key}`",
                format_value(base[key]) if key in base else MISSING,
                *(format_value(per_task[t][key]) for t in tasks),
            ]
            for key in keys
        ]
        lines += ["", f"### `--algo {name}`", ""]
        lines += markdown_table(["setting", "constructor", *tasks], rows)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    generated_doc_main("python -m curl_agents.defaults_table", __doc__.split("\n")[0], render, argv)


if __name__ == "__main__":
    main()
