"""Grid files: a trainer, the axes whose values are crossed, fixed settings, named protocols; planned into cells.

A grid is a TOML file (``experiments/grids/NAME.toml``)::

    description = "what the grid reproduces"
    trainer = "curl_agents.train"            # a key of experiments.grid.trainers.TRAINERS
    references = ["Srinivas et al. 2020, CURL, arXiv 2004.04136"]
    reduced = false                          # true: the whole grid is a reduced budget (labelled everywhere)

    [fixed]                                  # trainer config field names -> values, in every cell
    batch_size = 512

    [axes]                                   # crossed in file order; a value is a scalar (the field named
    env = ["cartpole-swingup", "cheetah-run"]  # like the axis) or a table {label = ..., field = value, ...}
    algo = ["curl", {label = "state_sac", algo = "state_sac", hidden_dim = 256}]
    seed = [1, 2, 3]

    [[exclude]]                              # cells to leave out, by axis labels
    env = "cheetah-run"
    algo = "state_sac"

    [protocols.cpu]                          # a named variant: ``--protocol cpu``
    description = "batch 32 on a CPU"
    reduced = true                           # labelled as reduced in status and reports
    fixed = {batch_size = 32}                # overrides [fixed]
    axes = {seed = [1, 2]}                   # replaces the values of existing axes

    [report]                                 # which settings are the task, the budget, the seed
    task = "env"
    budget = "env_steps"
    seed = "seed"
    baseline = "rad"                         # probability of improvement over this method
    published = "dmc_planet"                 # published columns (experiments.paper_scores.PUBLISHED_SETS)

    [slurm]                                  # submitit parameters for ``--launcher submitit``
    timeout_min = 1440

A cell's settings are ``[fixed]``, then the protocol's ``fixed``, then its axis values (later wins). A
cell is named by its axis labels, ``env=cartpole-swingup/algo=curl/seed=1``, which is also its folder.
The methods a report compares are the axes other than the task, budget and seed settings.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_shared.errors import UserError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli distribution
    import tomli as tomllib

GRIDS_DIR = Path(__file__).resolve().parents[1] / "grids"
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
TOP_LEVEL_KEYS = {"description", "trainer", "references", "reduced", "fixed", "axes", "exclude", "protocols",
                  "report", "slurm"}  # fmt: skip
PROTOCOL_KEYS = {"description", "reduced", "fixed", "axes", "slurm"}
REPORT_KEYS = {"task", "budget", "seed", "baseline", "published"}


@dataclass(frozen=True)
class AxisValue:
    """One value of an axis: its label (in cell names and reports) and the settings it sets."""

    label: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[AxisValue, ...]

    def labels(self) -> list[str]:
        return [v.label for v in self.values]


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    reduced: bool
    fixed: dict[str, Any]
    axes: dict[str, list[Any]]
    slurm: dict[str, Any]


@dataclass(frozen=True)
class ReportSpec:
    task: str | None = None
    budget: str | None = None
    seed: str | None = None
    baseline: str | None = None
    published: str | None = None


@dataclass(frozen=True)
class Cell:
    """One run of the grid: ``labels`` (axis -> label, in axis order) and the trainer ``settings``."""

    cell_id: str
    labels: dict[str, str]
    settings: dict[str, Any]


@dataclass(frozen=True)
class Grid:
    name: str
    path: Path
    text: str
    sha256: str
    description: str
    trainer: str
    references: tuple[str, ...]
    reduced: bool
    fixed: dict[str, Any]
    axes: tuple[Axis, ...]
    excludes: tuple[dict[str, str], ...]
    protocols: dict[str, Protocol]
    report: ReportSpec
    slurm: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """A grid under one protocol (or none): its cells, in axis order."""

    grid: Grid
    protocol: Protocol | None
    axes: tuple[Axis, ...]
    cells: tuple[Cell, ...]
    slurm: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``curl_table`` or ``curl_table_cpu``: the folder name of its runs and of its results."""
        return self.grid.name if self.protocol is None else f"{self.grid.name}_{self.protocol.name}"

    @property
    def reduced(self) -> bool:
        return self.grid.reduced or (self.protocol is not None and self.protocol.reduced)

    def banner(self) -> str:
        """One line naming the grid and protocol; says REDUCED when the numbers are not at the full budget."""
        text = f"grid {self.grid.name}"
        if self.protocol is not None:
            text += f", protocol {self.protocol.name}"
            if self.protocol.description:
                text += f" ({self.protocol.description})"
        if self.reduced:
            text = f"REDUCED BUDGET, not comparable with published numbers: {text}"
        return text

    def method_axes(self) -> list[str]:
        """Axes that distinguish the compared methods: all but the task, budget and seed settings."""
        roles = {self.grid.report.task, self.grid.report.budget, self.grid.report.seed}
        return [a.name for a in self.axes if a.name not in roles]

    def method_of(self, cell: Cell) -> str:
        names = self.method_axes()
        return "/".join(cell.labels[a] for a in names) if names else self.grid.name


# ----------------------------------------------------------------------------------------- loading


def find_grid(name_or_path: str | Path) -> Path:
    """A grid name (``curl_table``: ``experiments/grids/curl_table.toml``) or a path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UserError(f"GRID {path}: no such file")
        return path
    candidate = GRIDS_DIR / f"{name_or_path}.toml"
    if not candidate.is_file():
        known = ", ".join(sorted(p.stem for p in GRIDS_DIR.glob("*.toml")))
        raise UserError(f"GRID {name_or_path!r}: no such grid; allowed: {known}, or a path to a .toml file")
    return candidate


def load_grid(name_or_path: str | Path, name: str | None = None) -> Grid:
    """Parse and check a grid file. ``name`` replaces the file's stem (a copied grid keeps its name)."""
    path = find_grid(name_or_path)
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"grid file {path}: not valid TOML ({err})") from err
    where = f"grid file {path}"
    _check_keys(raw, TOP_LEVEL_KEYS, where)
    if "trainer" not in raw:
        raise UserError(f"{where}: no 'trainer'; name one of experiments.grid.trainers.TRAINERS")
    axes = tuple(_axis(n, v, where) for n, v in _table(raw.get("axes", {}), f"{where} [axes]").items())
    if not axes:
        raise UserError(f"{where}: [axes] is empty; a grid needs at least one axis (e.g. seed = [1, 2, 3])")
    protocols = {n: _protocol(n, p, axes, where) for n, p in _table(raw.get("protocols", {}), where).items()}
    report = _table(raw.get("report", {}), f"{where} [report]")
    _check_keys(report, REPORT_KEYS, f"{where} [report]")
    excludes = tuple(_exclude(e, axes, where) for e in raw.get("exclude", []))
    fixed = _table(raw.get("fixed", {}), f"{where} [fixed]")
    _check_fixed_applies(fixed, list(axes), where)
    return Grid(
        name=name or path.stem,
        path=path,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        description=str(raw.get("description", "")),
        trainer=str(raw["trainer"]),
        references=tuple(str(r) for r in raw.get("references", [])),
        reduced=bool(raw.get("reduced", False)),
        fixed=fixed,
        axes=axes,
        excludes=excludes,
        protocols=protocols,
        report=ReportSpec(**report),
        slurm=_table(raw.get("slurm", {}), f"{where} [slurm]"),
    )


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a table, got {value!r}")
    return dict(value)


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown keys {unknown}; allowed: {', '.join(sorted(allowed))}")


def _label(value: Any, where: str) -> str:
    label = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if not LABEL_PATTERN.match(label):
        raise UserError(
            f"{where}: value {value!r} cannot name a cell folder; write it as a table with a label, "
            f'e.g. {{label = "mine", ...}} (labels: letters, digits, . _ + -)'
        )
    return label


def _axis(name: str, values: Any, where: str) -> Axis:
    where = f"{where} axis {name!r}"
    if not isinstance(values, list) or not values:
        raise UserError(f"{where}: expected a non-empty list of values, got {values!r}")
    out = []
    for value in values:
        if isinstance(value, dict):
            if "label" not in value:
                raise UserError(f"{where}: table value {value!r} has no 'label'")
            settings = {k: v for k, v in value.items() if k != "label"}
            out.append(AxisValue(_label(value["label"], where), settings))
        else:
            out.append(AxisValue(_label(value, where), {name: value}))
    labels = [v.label for v in out]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise UserError(f"{where}: labels {duplicates} appear twice; each value needs its own label")
    return Axis(name, tuple(out))


def _protocol(name: str, raw: Any, axes: tuple[Axis, ...], where: str) -> Protocol:
    where = f"{where} [protocols.{name}]"
    raw = _table(raw, where)
    _label(name, where)
    _check_keys(raw, PROTOCOL_KEYS, where)
    fixed = _table(raw.get("fixed", {}), f"{where} fixed")
    replaced = _table(raw.get("axes", {}), f"{where} axes")
    unknown = sorted(set(replaced) - {a.name for a in axes})
    if unknown:
        raise UserError(f"{where}: axes {unknown} are not axes of the grid; allowed: {', '.join(a.name for a in axes)}")
    for axis_name, values in replaced.items():
        _axis(axis_name, values, where)  # checks the values
    _check_fixed_applies(fixed, [a for a in axes if a.name not in replaced], where)
    return Protocol(
        name=name,
        description=str(raw.get("description", "")),
        reduced=bool(raw.get("reduced", False)),
        fixed=fixed,
        axes=replaced,
        slurm=_table(raw.get("slurm", {}), f"{where} slurm"),
    )


def _check_fixed_applies(fixed: dict[str, Any], axes: list[Axis], where: str) -> None:
    """A fixed setting that every value of some axis sets would never apply: refuse it."""
    dead = sorted(k for k in fixed for a in axes if all(k in v.settings for v in a.values))
    if dead:
        raise UserError(
            f"{where}: fixed sets {dead}, which every value of an axis sets (the fixed value would never apply); "
            "change the axis values instead"
        )


def _exclude(raw: Any, axes: tuple[Axis, ...], where: str) -> dict[str, str]:
    raw = _table(raw, f"{where} [[exclude]]")
    by_name = {a.name: a for a in axes}
    for axis_name in raw:
        if axis_name not in by_name:
            raise UserError(f"{where} [[exclude]]: {axis_name!r} is not an axis; allowed: {', '.join(by_name)}")
    return {k: _label(v, f"{where} [[exclude]]") for k, v in raw.items()}


# ----------------------------------------------------------------------------------------- planning


def plan(grid: Grid, protocol: str | None = None, select: dict[str, set[str]] | None = None) -> Plan:
    """The cells of ``grid`` under ``protocol``, optionally only those whose labels are in ``select``."""
    proto = None
    if protocol is not None:
        if protocol not in grid.protocols:
            allowed = ", ".join(sorted(grid.protocols)) or "(none)"
            raise UserError(f"--protocol {protocol!r}: grid {grid.name} has no such protocol; allowed: {allowed}")
        proto = grid.protocols[protocol]
    axes = tuple(
        _axis(a.name, proto.axes[a.name], f"grid file {grid.path} [protocols.{proto.name}]")
        if proto is not None and a.name in proto.axes
        else a
        for a in grid.axes
    )
    _check_select(select or {}, axes)
    base = {**grid.fixed, **(proto.fixed if proto else {})}
    cells = []
    for combo in _product(axes):
        labels = {axis.name: value.label for axis, value in zip(axes, combo)}
        if any(all(labels.get(k) == v for k, v in ex.items()) for ex in grid.excludes):
            continue
        if select and not all(labels[k] in allowed for k, allowed in select.items()):
            continue
        settings = dict(base)
        seen: dict[str, str] = {}
        for axis, value in zip(axes, combo):
            for key, setting in value.settings.items():
                if key in seen:
                    raise UserError(
                        f"grid file {grid.path}: axes {seen[key]!r} and {axis.name!r} both set {key!r}; "
                        "one setting may come from one axis only"
                    )
                seen[key] = axis.name
                settings[key] = setting
        cell_id = "/".join(f"{k}={v}" for k, v in labels.items())
        cells.append(Cell(cell_id, labels, settings))
    slurm = {**grid.slurm, **(proto.slurm if proto else {})}
    return Plan(grid=grid, protocol=proto, axes=axes, cells=tuple(cells), slurm=slurm)


def _product(axes: tuple[Axis, ...]) -> list[tuple[AxisValue, ...]]:
    combos: list[tuple[AxisValue, ...]] = [()]
    for axis in axes:
        combos = [(*c, v) for c in combos for v in axis.values]
    return combos


def _check_select(select: dict[str, set[str]], axes: tuple[Axis, ...]) -> None:
    by_name = {a.name: a for a in axes}
    for name, labels in select.items():
        if name not in by_name:
            raise UserError(f"--select {name}=...: not an axis of this grid; allowed: {', '.join(by_name)}")
        unknown = sorted(set(labels) - set(by_name[name].labels()))
        if unknown:
            raise UserError(
                f"--select {name}={','.join(unknown)}: not values of axis {name}; "
                f"allowed: {', '.join(by_name[name].labels())}"
            )


def parse_select(items: list[str] | None) -> dict[str, set[str]]:
    """``["algo=curl,rad", "seed=1"]`` -> ``{"algo": {"curl", "rad"}, "seed": {"1"}}``."""
    select: dict[str, set[str]] = {}
    for item in items or []:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise UserError(f"--select {item!r}: expected AXIS=LABEL[,LABEL...], e.g. algo=curl,rad")
        select.setdefault(name, set()).update(v for v in values.split(",") if v)
    return select
