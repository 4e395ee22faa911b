"""Time our code and the official reference code in one run: worker processes, interleaved rounds, ratios.

Each configuration runs in its own long-lived worker process, because the host allocator is set per
process: our code as its training commands run it (``ssl_shared.host_memory.reuse_freed_host_memory``
applied in-process), and the official code twice, once as shipped (glibc's default allocator) and once
with the same allocator setting given through the environment (:func:`reuse_allocator_env`). The
parent sends every worker the same request once per round, rotating which worker goes first, so a
drift of the machine's load reaches all configurations alike. Per round it takes the median of each
worker's samples; a ratio is the median over rounds of the per-round ratios, with their minimum and
maximum as the spread.

Protocol: JSON lines. A worker writes ``{"ready": true, ...}`` once set up, then answers each request
``{"op": NAME, ...}`` with one line; ``{"op": "exit"}`` ends it and returns its peak RSS. Whatever the
code under test prints goes to the worker's log (its stderr), never into the protocol.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from ssl_shared.provenance import CPU_FLAGS_OF_INTEREST

REPO = Path(__file__).resolve().parents[1]
OURS = "ours"
NO_OFFICIAL = "no --official-dir: only our code was timed; no ratio to the official code was measured"
T = TypeVar("T")


# ----------------------------------------------------------------------------------- configurations
@dataclass(frozen=True)
class Config:
    """One worker process: which code (``impl``), how its allocator is set, extra environment variables."""

    name: str
    impl: str  # "ours" or "official"
    allocator: str
    env: dict[str, str] = field(default_factory=dict)


def reuse_allocator_env() -> dict[str, str]:
    """The environment form of ``reuse_freed_host_memory()``: glibc reads these at start-up (same values)."""
    from ssl_shared.host_memory import TRIM_THRESHOLD_BYTES

    return {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD_BYTES)}


def configurations(with_official: bool) -> list[Config]:
    """Ours, then (with an official checkout) the official code with glibc's default and with the reuse setting."""
    ours = Config(OURS, "ours", "reuse (mallopt in-process, as our training commands)")
    if not with_official:
        return [ours]
    return [
        ours,
        Config("official-glibc-default", "official", "glibc default (as shipped)"),
        Config(
            "official-reuse",
            "official",
            "reuse (environment: " + " ".join(f"{k}={v}" for k, v in reuse_allocator_env().items()) + ")",
            reuse_allocator_env(),
        ),
    ]


# ----------------------------------------------------------------------------------- official checkout
def check_official_dir(path: str | Path, required: Sequence[str], repo_url: str) -> Path:
    """``path`` resolved, or ``ValueError`` (one line naming the path) when it lacks a required file."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ValueError(f"--official-dir {path}: not a directory; pass a checkout of {repo_url}")
    missing = [name for name in required if not (directory / name).is_file()]
    if missing:
        raise ValueError(f"--official-dir {path}: no {', '.join(missing)} there; pass a checkout of {repo_url}")
    return directory.resolve()


def official_commit(path: Path) -> dict[str, object]:
    """The checkout's HEAD and its Python files that differ from HEAD (none when it runs unmodified)."""

    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(path), *argv], capture_output=True, text=True, check=True).stdout

    try:
        head = git("rev-parse", "HEAD").strip()
        modified = [line[3:] for line in git("status", "--porcelain", "--", "*.py").splitlines()]
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"commit": "unknown (not a git checkout)", "modified_python_files": None}
    return {"commit": head, "modified_python_files": modified}


# ----------------------------------------------------------------------------------- measuring
def rss_bytes() -> int:
    """Resident set size of this process (``VmRSS`` of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_calls(
    fn: Callable[[], object],
    n: int,
    sync: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] = time.process_time,
    faults: Callable[[], int] = minor_faults,
) -> dict[str, list[float]]:
    """Call ``fn`` ``n`` times; per call: wall seconds, process CPU seconds, minor page faults."""
    out: dict[str, list[float]] = {"wall_s": [], "cpu_s": [], "minor_faults": []}
    for _ in range(n):
        if sync is not None:
            sync()
        wall, cpu, flt = clock(), cpu_clock(), faults()
        fn()
        if sync is not None:
            sync()
        out["wall_s"].append(clock() - wall)
        out["cpu_s"].append(cpu_clock() - cpu)
        out["minor_faults"].append(faults() - flt)
    return out


# ----------------------------------------------------------------------------------- rounds and ratios
def interleave(calls: Mapping[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Call every entry once per round, the first one rotating (round r starts at entry r mod k)."""
    names = list(calls)
    out: dict[str, list[T]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(calls[name]())
    return out


def median_of_rounds(samples: Mapping[str, Sequence[Sequence[float]]]) -> dict[str, float]:
    """Per name: the median over rounds of each round's median (``samples[name][r]``: round ``r``)."""
    return {name: statistics.median(statistics.median(r) for r in rounds) for name, rounds in samples.items()}


def compare_rounds(samples: Mapping[str, Sequence[Sequence[float]]], ours: str = OURS) -> dict[str, Any]:
    """Per-round medians of costs (seconds per unit) and, for every other entry, its cost over ours.

    ``samples[name][r]`` are the samples of round ``r``. Returns ``per_round`` (name -> per-round
    medians), ``median`` (name -> median of its per-round medians) and ``ratio_to_ours`` (name ->
    ``per_round`` ratios other/ours, their ``median``, ``min`` and ``max``): a ratio above 1 means
    ours takes less time.
    """
    per_round = {name: [statistics.median(r) for r in rounds] for name, rounds in samples.items()}
    result: dict[str, Any] = {
        "per_round": per_round,
        "median": {name: statistics.median(m) for name, m in per_round.items()},
        "ratio_to_ours": {},
    }
    for name, medians in per_round.items():
        if name == ours:
            continue
        if len(medians) != len(per_round[ours]):
            raise ValueError(f"{name} has {len(medians)} rounds, {ours} has {len(per_round[ours])}")
        ratios = [theirs / mine for theirs, mine in zip(medians, per_round[ours])]
        result["ratio_to_ours"][name] = {
            "per_round": ratios,
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
        }
    return result


def format_ratio(ratio: Mapping[str, Any] | None) -> str:
    """``"2.31x [2.20, 2.45]"`` (median [min, max] over rounds), ``"-"`` when none was measured."""
    if not ratio:
        return "-"
    return f"{ratio['median']:.2f}x [{ratio['min']:.2f}, {ratio['max']:.2f}]"


# ----------------------------------------------------------------------------------- worker side
def protocol_stream() -> IO[str]:
    """The worker's reply channel (the original stdout); afterwards anything printed goes to stderr."""
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # prints of the code under test, Python or C, land in the log
    return stream


def serve(handlers: Mapping[str, Callable[..., dict]], stream: IO[str], info: Mapping[str, Any]) -> None:
    """Answer requests from stdin until ``exit``; a failing handler answers ``{"error": traceback}``."""
    malloc_env = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    stream.write(json.dumps({"ready": True, "malloc_env": malloc_env, **info}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        if op == "exit":
            stream.write(json.dumps({"peak_rss_bytes": peak_rss_bytes()}) + "\n")
            return
        try:
            reply = handlers[op](**request)
        except Exception:  # reported to the parent, which stops the benchmark with it
            reply = {"error": traceback.format_exc()}
        stream.write(json.dumps(reply) + "\n")


# ----------------------------------------------------------------------------------- parent side
class Worker:
    """A worker process speaking the JSON-lines protocol; ``worker(op, **kw)`` sends one request."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self.name, self.log = name, cwd / f"{name}.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=dict(env), cwd=cwd
            )
        self.info: dict[str, Any] = {}

    def wait_ready(self) -> dict[str, Any]:
        self.info = self._read()
        return self.info

    def __call__(self, op: str, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **request}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} exited (code {self.proc.wait()}); end of its log:\n{self._tail()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"worker {self.name} failed:\n{reply['error']}")
        return reply

    def _tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> dict[str, Any]:
        reply = self("exit")
        self.proc.wait(timeout=120)
        return reply

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def worker_env(config: Config, threads: int) -> dict[str, str]:
    """The environment of a worker: ours first on PYTHONPATH, thread count, the configuration's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("PYOPENGL_PLATFORM", env["MUJOCO_GL"])
    env.update(config.env)
    return env


@contextlib.contextmanager
def open_workers(
    argvs: Mapping[str, Sequence[str]], configs: Sequence[Config], threads: int, cwd: Path
) -> Iterator[dict[str, Worker]]:
    """Start one worker per configuration (``argvs[name]``), all at once; wait until each is ready.

    Leaving the block normally does not close them (``close()`` returns each peak RSS); on an error
    every worker still running is killed.
    """
    workers: dict[str, Worker] = {}
    try:
        for config in configs:
            workers[config.name] = Worker(config.name, argvs[config.name], worker_env(config, threads), cwd)
        for worker in workers.values():
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers.values():
            worker.kill()


# ----------------------------------------------------------------------------------- provenance
def command_line(script: str, argv: Sequence[str], hidden: Sequence[str] = ("--official-dir",)) -> str:
    """``python <script> <argv>`` with the values of ``hidden`` flags (machine paths) shown as ``PATH``."""
    shown, hide_next = [], False
    for arg in argv:
        if hide_next:
            shown.append("PATH")
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag in hidden:
            if eq:
                shown.append(f"{flag}=PATH")
            else:
                shown.append(arg)
                hide_next = True
            continue
        shown.append(arg)
    return "python " + " ".join([script, *map(shlex.quote, shown)])


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def markdown_header(title: str, result: Mapping[str, Any]) -> list[str]:
    """Title, command, both commits, hardware, threads, load, versions; says so when no ratio was measured."""
    p, official, hw = result["provenance"], result["official"], result["provenance"]["hardware"]
    cpu = hw["cpu"]
    flags = ", ".join(cpu["flags"]) or "none of " + ", ".join(CPU_FLAGS_OF_INTEREST)
    if official["measured"]:
        changed = official["modified_python_files"]
        official_line = f"{official['repository']} @ {official['commit']} (modified Python files: {changed or 'none'})"
    else:
        official_line = "not run"
    lines = [
        f"# {title}, {'ours and the official code' if official['measured'] else 'ours alone'} ({result['device']})",
        "",
        f"Command: `{p['command']}`  ",
        f"Our commit: {p['git_commit']}; official: {official_line}  ",
        f"Hardware: {cpu['model']} (flags: {flags}; torch CPU kernels {cpu['torch_cpu_capability']}"
        + (f"; oneDNN capped at {cpu['onednn_max_cpu_isa']}" if cpu.get("onednn_max_cpu_isa") else "")
        + "), "
        f"{cpu['usable_cpus']} usable of {cpu['logical_cpus']} logical CPUs, "
        f"GPUs: {', '.join(g['name'] for g in hw['gpus']) or 'none'}  ",
        f"Torch threads {p['torch_threads']}; load average before {p['load_average_before']}, after "
        f"{p.get('load_average_after')}; wall time {p.get('wall_time_s')} s; {p['date_utc']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in p["versions"].items()),
        "",
    ]
    if not official["measured"]:
        lines += [f"**{NO_OFFICIAL[0].upper() + NO_OFFICIAL[1:]}.**", ""]
    return lines
