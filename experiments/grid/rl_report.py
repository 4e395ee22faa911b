"""The report of an RL grid (``curl_agents.train``): the paper's table, rliable aggregates and figures.

Per budget (the ``[report] budget`` setting, in env steps):

- the table in the CURL paper's format: mean ± std over seeds per task and method, each run scored by its
  own final evaluation (:func:`experiments.aggregate.final_score`), beside the published columns;
- aggregate metrics of Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the Statistical
  Precipice" (arXiv 2108.13264), computed by ``rliable``: IQM, mean and optimality gap with 95% stratified
  bootstrap CIs, the probability of improvement over the grid's baseline method, a performance profile
  and an IQM sample-efficiency curve (PNG). Scores are normalised by 1000, the maximum episode return of
  every DeepMind Control task.

Aggregates need a (runs x tasks) matrix per method: they use the tasks where every method has a finished
run, and for each method the seeds it finished on all of those tasks; the text says which.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from experiments.aggregate import final_score, read_eval_csv
from experiments.grid.report import Finished, ReportOptions, mean_std, save_figure, seeded_numpy
from experiments.grid.spec import Plan
from experiments.paper_scores import PUBLISHED_SETS, budget_key
from ssl_shared.errors import UserError

DMC_MAX_RETURN = 1000.0


class Run:
    """One finished run: its final score and its evaluation curve."""

    def __init__(self, finished: Finished, budget: int) -> None:
        self.finished = finished
        path = finished.folder / "eval.csv"
        self.curve = read_eval_csv(path)
        self.eval_step, self.score = final_score(self.curve, budget, source=path)


def budget_of(plan: Plan, finished: Finished) -> int:
    name = plan.grid.report.budget
    value = finished.cell.settings.get(name) if name else None
    if not isinstance(value, int):
        raise UserError(f"grid file {plan.grid.path}: [report] budget must name an integer setting; got {name!r}")
    return value


def rl_sections(plan: Plan, finished: list[Finished], dest: Path, options: ReportOptions) -> list[str]:
    by_budget: dict[int, list[Run]] = defaultdict(list)
    for f in finished:
        budget = budget_of(plan, f)
        by_budget[budget].append(Run(f, budget))
    methods = _ordered_methods(plan)
    tasks = _ordered_tasks(plan)
    lines: list[str] = []
    for budget in sorted(by_budget):
        lines += budget_section(plan, budget, by_budget[budget], methods, tasks, dest, options)
    lines += _scores_csv(by_budget, dest)
    return lines


def _ordered_methods(plan: Plan) -> list[str]:
    seen: dict[str, None] = {}
    for cell in plan.cells:
        seen.setdefault(plan.method_of(cell), None)
    return list(seen)


def _ordered_tasks(plan: Plan) -> list[str]:
    from experiments.grid.report import role_value

    seen: dict[str, None] = {}
    for cell in plan.cells:
        seen.setdefault(role_value(cell, plan.grid.report.task), None)
    return list(seen)


def budget_section(plan: Plan, budget: int, runs: list[Run], methods: list[str], tasks: list[str], dest: Path,
                   options: ReportOptions) -> list[str]:  # fmt: skip
    scores: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))  # method, task, seed
    for run in runs:
        f = run.finished
        scores[f.method][f.task][f.seed] = run.score
    present = [m for m in methods if m in scores]
    lines = [f"## {budget:,} env steps", ""]
    lines += paper_table(plan, budget, scores, present, tasks)
    lines += aggregates(plan, budget, runs, scores, present, tasks, dest, options)
    return lines


def paper_table(plan: Plan, budget: int, scores, methods: list[str], tasks: list[str]) -> list[str]:
    published = PUBLISHED_SETS.get(plan.grid.report.published or "", ())
    key = budget_key(budget)
    columns = [p for p in published if key is not None and p.scores.get(key)]
    head = ["task", *[f"{m} (ours)" for m in methods], *[p.name + ("†" if not p.checked else "") for p in columns]]
    lines = [
        "Evaluation return (mean ± population std over seeds, number of seeds): each run's own final "
        f"evaluation at {budget:,} env steps" + (" beside the published scores." if columns else "."),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for task in tasks:
        ours = [mean_std(list(scores[m][task].values())) if task in scores[m] else "-" for m in methods]
        theirs = []
        for p in columns:
            value = p.scores[key].get(task)
            theirs.append(f"{value[0]:g} ± {value[1]:g}" if value else "-")
        lines.append("| " + " | ".join([task, *ours, *theirs]) + " |")
    lines.append("")
    if published and not columns:
        lines += [f"No published scores at {budget:,} env steps (papers report 100K and 500K).", ""]
    for p in columns:
        mark = "† transcribed from a secondary source, not yet checked against the paper; " if not p.checked else ""
        lines.append(f"- {p.name}: {mark}{p.citation}")
    if columns:
        lines.append("")
    return lines


def aggregates(plan: Plan, budget: int, runs: list[Run], scores, methods: list[str], tasks: list[str], dest: Path,
               options: ReportOptions) -> list[str]:  # fmt: skip
    from rliable import library as rly
    from rliable import metrics

    common_tasks = [t for t in tasks if all(t in scores[m] for m in methods)]
    seeds = {m: sorted(set.intersection(*(set(scores[m][t]) for t in common_tasks)), key=_seed_key)
             for m in methods} if common_tasks else {}  # fmt: skip
    usable = [m for m in methods if seeds.get(m)]
    if not usable:
        return ["No aggregate metrics: no task has a finished run of every method.", ""]
    matrices = {m: np.array([[scores[m][t][s] / DMC_MAX_RETURN for t in common_tasks] for s in seeds[m]])
                for m in usable}  # fmt: skip
    lines = [
        f"Aggregate metrics over {len(common_tasks)} task(s) ({', '.join(common_tasks)}), scores normalised by "
        f"{DMC_MAX_RETURN:g} (the DMC maximum episode return); 95% stratified-bootstrap CIs (rliable, "
        f"{options.reps:,} resamples of runs within each task, numpy seed {options.seed}).",
        "",
        "| method | runs x tasks | IQM | mean | optimality gap |",
        "|---|---|---|---|---|",
    ]
    dropped = [m for m in methods if m not in usable]

    def metric_vector(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_optimality_gap(x)])

    for m in usable:
        with seeded_numpy(options.seed):
            point, interval = rly.get_interval_estimates({m: matrices[m]}, metric_vector, reps=options.reps)
        cells = [f"{point[m][i]:.3f} [{interval[m][0][i]:.3f}, {interval[m][1][i]:.3f}]" for i in range(3)]
        lines.append(f"| {m} | {matrices[m].shape[0]} x {matrices[m].shape[1]} | " + " | ".join(cells) + " |")
    lines.append("")
    partial_seeds = [m for m in usable if any(len(scores[m][t]) > len(seeds[m]) for t in common_tasks)]
    if partial_seeds or dropped or len(common_tasks) < len(tasks):
        notes = []
        if partial_seeds:
            notes.append(
                f"{', '.join(partial_seeds)}: only the seeds finished on every task ({_seed_list(seeds, partial_seeds)})"
            )
        if dropped:
            notes.append(f"left out (no seed finished on every task): {', '.join(dropped)}")
        if len(common_tasks) < len(tasks):
            notes.append(
                f"tasks without a run of every method left out: {', '.join(t for t in tasks if t not in common_tasks)}"
            )
        lines += [f"Partial data: {'; '.join(notes)}.", ""]
    lines += improvement(plan, usable, matrices, options)
    lines += figures(plan, budget, runs, usable, matrices, seeds, common_tasks, dest, options)
    return lines


def _seed_key(seed: str) -> tuple[int, str]:
    return (int(seed), seed) if seed.lstrip("-").isdigit() else (0, seed)


def _seed_list(seeds: dict[str, list[str]], methods: list[str]) -> str:
    return "; ".join(f"{m}: {', '.join(seeds[m])}" for m in methods)


def improvement(plan: Plan, methods: list[str], matrices: dict[str, np.ndarray], options: ReportOptions) -> list[str]:
    from rliable import library as rly
    from rliable import metrics

    baseline = plan.grid.report.baseline
    if baseline is None:
        return []
    if baseline not in matrices:
        return [f"Probability of improvement over `{baseline}`: not computed, `{baseline}` has no aggregate data.", ""]
    lines = [
        f"Probability of improvement over `{baseline}` (P(method > {baseline}): the Mann-Whitney statistic per task, "
        f"averaged over tasks; 95% stratified-bootstrap CI, {options.curve_reps:,} resamples):",
        "",
        f"| method | P(method > {baseline}) |",
        "|---|---|",
    ]
    for m in methods:
        if m == baseline:
            continue
        with seeded_numpy(options.seed):
            point, interval = rly.get_interval_estimates(
                {m: [matrices[m], matrices[baseline]]}, metrics.probability_of_improvement, reps=options.curve_reps
            )
        low, high = np.asarray(interval[m], dtype=float).ravel()
        lines.append(f"| {m} | {float(point[m]):.3f} [{low:.3f}, {high:.3f}] |")
    return [*lines, ""]


def figures(plan: Plan, budget: int, runs: list[Run], methods: list[str], matrices: dict[str, np.ndarray],
            seeds: dict[str, list[str]], tasks: list[str], dest: Path, options: ReportOptions) -> list[str]:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly
    from rliable import metrics, plot_utils

    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    title = f"{plan.name}, {budget:,} env steps" + (" (REDUCED)" if plan.reduced else "")
    lines = []

    taus = np.linspace(0.0, 1.0, 101)
    profiles, profile_cis = {}, {}
    for m in methods:
        with seeded_numpy(options.seed):
            p, ci = rly.create_performance_profile({m: matrices[m]}, taus, reps=options.curve_reps)
        profiles[m], profile_cis[m] = p[m], ci[m]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    plot_utils.plot_performance_profiles(
        profiles, taus, performance_profile_cis=profile_cis, colors=colors, ax=ax,
        xlabel=r"normalised score $\tau$ (return / 1000)", ylabel=r"fraction of runs with score $> \tau$",
        labelsize="medium", ticklabelsize="small",
    )  # fmt: skip
    ax.set_title(title, fontsize="medium")
    ax.legend(handles=[plt.Line2D([], [], color=colors[m], label=m) for m in methods], fontsize="small")
    fig.tight_layout()
    profile_name = f"performance_profile_{budget}.png"
    save_figure(fig, dest / profile_name)
    lines.append(f"![performance profile]({profile_name})")

    by_key = {(r.finished.method, r.finished.task, r.finished.seed): dict(r.curve) for r in runs}
    steps = sorted(set.intersection(*(set(by_key[(m, t, s)]) for m in methods for t in tasks for s in seeds[m])))
    if len(steps) < 2:
        lines += ["", "No sample-efficiency curve: the runs share fewer than two evaluation steps.", ""]
        return lines
    curves = {m: np.array([[[by_key[(m, t, s)][k] / DMC_MAX_RETURN for k in steps] for t in tasks] for s in seeds[m]])
              for m in methods}  # fmt: skip

    def iqm_per_step(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x[..., j]) for j in range(x.shape[-1])])

    points, intervals = {}, {}
    for m in methods:
        with seeded_numpy(options.seed):
            p, ci = rly.get_interval_estimates({m: curves[m]}, iqm_per_step, reps=options.curve_reps)
        points[m], intervals[m] = p[m], ci[m]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    plot_utils.plot_sample_efficiency_curve(
        np.array(steps) / 1000, points, intervals, algorithms=methods, colors=colors, ax=ax,
        xlabel="thousands of env steps", ylabel="IQM of return / 1000", labelsize="medium", ticklabelsize="small",
    )  # fmt: skip
    ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small")
    fig.tight_layout()
    curve_name = f"sample_efficiency_{budget}.png"
    save_figure(fig, dest / curve_name)
    lines += [
        f"![sample efficiency]({curve_name})",
        "",
        f"Performance profile: fraction of (run, task) scores above each threshold, 95% CI band; sample "
        f"efficiency: IQM over runs and tasks at the {len(steps)} evaluation steps every run has, 95% CI band "
        f"({options.curve_reps:,} resamples each).",
        "",
    ]
    return lines


def _scores_csv(by_budget: dict[int, list[Run]], dest: Path) -> list[str]:
    from ssl_shared.run_dir import atomic_write_text

    rows = ["cell,method,task,budget,seed,eval_env_step,score"]
    for budget in sorted(by_budget):
        for run in by_budget[budget]:
            f = run.finished
            rows.append(f"{f.cell.cell_id},{f.method},{f.task},{budget},{f.seed},{run.eval_step},{run.score:g}")
    atomic_write_text(dest / "scores.csv", "\n".join(rows) + "\n")
    return ["Every run's score: `scores.csv` (its final evaluation and the env step it was taken at).", ""]
