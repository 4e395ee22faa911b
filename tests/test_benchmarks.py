"""The side-by-side benchmark harness (benchmarks/side_by_side.py and the CURL / CUT scripts built on it).

No official checkout and no timing here: fake clocks and fake workers with scripted replies stand in,
and every expected number is worked out by hand in the test.
"""

import contextlib
import json
import platform
import subprocess
import sys
import textwrap

import pytest

from benchmarks import curl_throughput, cut_throughput
from benchmarks.side_by_side import (
    OURS,
    command_line,
    compare_rounds,
    configurations,
    interleave,
    open_workers,
    time_calls,
    worker_env,
)
from ssl_shared.provenance import hardware


# ----------------------------------------------------------------------------------- fake timers
def scripted(values):
    it = iter(values)
    return lambda: next(it)


def test_time_calls_reads_wall_cpu_and_faults_around_each_call():
    calls = []
    out = time_calls(
        lambda: calls.append(1),
        2,
        clock=scripted([0.0, 1.5, 10.0, 12.5]),
        cpu_clock=scripted([0.0, 1.0, 5.0, 7.0]),
        faults=scripted([100, 130, 200, 260]),
    )
    assert len(calls) == 2
    assert out == {"wall_s": [1.5, 2.5], "cpu_s": [1.0, 2.0], "minor_faults": [30, 60]}


def test_interleave_rotates_which_worker_goes_first_each_round():
    order = []

    def worker(name):
        def call():
            order.append(name)
            return f"{name}{sum(n == name for n in order)}"

        return call

    out = interleave({"a": worker("a"), "b": worker("b"), "c": worker("c")}, rounds=4)
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert out == {"a": ["a1", "a2", "a3", "a4"], "b": ["b1", "b2", "b3", "b4"], "c": ["c1", "c2", "c3", "c4"]}


def test_compare_rounds_takes_median_of_per_round_ratios():
    samples = {
        OURS: [[1.0, 3.0, 2.0], [2.0, 2.0, 4.0], [1.0, 1.0, 1.0]],
        "official": [[4.0, 6.0, 5.0], [9.0, 7.0, 8.0], [3.0, 2.0, 3.5]],
    }
    out = compare_rounds(samples)
    # per-round medians: ours 2, 2, 1; official 5, 8, 3 -> ratios 2.5, 4.0, 3.0 -> median 3.0
    # (the ratio of the overall medians, 5 / 2 = 2.5, is not what is reported)
    assert out["per_round"] == {OURS: [2.0, 2.0, 1.0], "official": [5.0, 8.0, 3.0]}
    assert out["median"] == {OURS: 2.0, "official": 5.0}
    assert out["ratio_to_ours"] == {"official": {"per_round": [2.5, 4.0, 3.0], "median": 3.0, "min": 2.5, "max": 4.0}}


# ----------------------------------------------------------------------------------- fake workers
class FakeWorker:
    """Answers each op with the next scripted reply; records the requests."""

    def __init__(self, replies):
        self.replies = {op: list(r) for op, r in replies.items()}
        self.requests = []
        self.info = {"ready": True}

    def __call__(self, op, **request):
        self.requests.append((op, request))
        return self.replies[op].pop(0)

    def close(self):
        return {"peak_rss_bytes": 2_000_000_000}


def updates_reply(pair_walls):
    return {"wall_s": pair_walls, "cpu_s": [2 * w for w in pair_walls], "minor_faults": [10] * len(pair_walls)}


def collect_reply(wall_s, env_steps=800, rss=800_000, transitions=100):
    return {
        "env_steps": env_steps,
        "wall_s": wall_s,
        "cpu_s": wall_s,
        "rss_growth_bytes": rss,
        "transitions": transitions,
    }


def curl_args(**overrides):
    args = curl_throughput.build_parser().parse_args([])
    for key, value in dict(rounds=2, pairs=3, warmup_pairs=1, batch_sizes=[128], **overrides).items():
        setattr(args, key, value)
    return args


def curl_workers(names):
    """Ours and, for every other name, the same scripted official worker."""
    warm = [collect_reply(9.0), collect_reply(9.0)]  # the two untimed warm-up collections
    workers = {}
    for name in names:
        if name == OURS:
            workers[name] = FakeWorker(
                {
                    "collect": [*warm, collect_reply(2.0), collect_reply(4.0), collect_reply(8.0), collect_reply(8.0)],
                    # s/update = pair / 2: round 1 (1.0, 0.5, 1.5) -> 1.0; round 2 (0.5, 0.6, 0.7) -> 0.6
                    "updates": [updates_reply([9.0]), updates_reply([2.0, 1.0, 3.0]), updates_reply([1.0, 1.2, 1.4])],
                    "replay": [{"bytes_per_transition": 30_000.0, "stored": 600, "capacity": 1000}],
                }
            )
        else:
            workers[name] = FakeWorker(
                {
                    "collect": [*warm, collect_reply(4.0), collect_reply(4.0), collect_reply(16.0), collect_reply(8.0)],
                    # round 1 (3.0, 2.0, 2.5) -> 2.5; round 2 (2.1, 1.8, 1.5) -> 1.8
                    "updates": [updates_reply([9.0]), updates_reply([6.0, 4.0, 5.0]), updates_reply([4.2, 3.6, 3.0])],
                    "replay": [{"bytes_per_transition": 180_000.0, "stored": 600, "capacity": 1000}],
                }
            )
    return workers


def test_curl_measure_reports_per_round_medians_and_the_median_ratio():
    workers = curl_workers([OURS, "official"])
    result = curl_throughput.measure(workers, curl_args())
    wall = result["updates"]["128"]["wall_s_per_update"]
    assert wall["per_round"] == {OURS: [1.0, 0.6], "official": [2.5, 1.8]}
    assert wall["median"][OURS] == pytest.approx(0.8) and wall["median"]["official"] == pytest.approx(2.15)
    ratio = wall["ratio_to_ours"]["official"]  # 2.5 / 1.0 and 1.8 / 0.6
    assert ratio["per_round"] == pytest.approx([2.5, 3.0])
    assert (ratio["median"], ratio["min"], ratio["max"]) == pytest.approx((2.75, 2.5, 3.0))
    # collection, 800 env steps per round: ours 2 s then 4 s; official 4 s then 4 s -> ratios 2.0 and 1.0
    random = result["collection"]["random_actions"]
    assert random["ratio_to_ours"]["official"]["per_round"] == pytest.approx([2.0, 1.0])
    assert random["env_steps_per_s"][OURS] == pytest.approx(800 / 3.0)  # median of 2 s and 4 s per 800 steps
    assert random["rss_growth_per_transition"][OURS] == pytest.approx(8_000)  # 2 x 800 KB over 2 x 100
    policy = result["collection"]["policy_actions"]  # ours 8 s and 8 s; official 16 s and 8 s
    assert policy["ratio_to_ours"]["official"]["per_round"] == pytest.approx([2.0, 1.0])
    assert result["replay"]["ratio_to_ours"] == {"official": 6.0}
    # every timed request went out once per round, after one untimed warm-up request of each kind
    ops = [op for op, _ in workers[OURS].requests]
    assert ops == ["collect"] * 2 + ["collect"] * 4 + ["updates"] * 3 + ["replay"]
    assert workers[OURS].requests[-2] == ("updates", {"batch_size": 128, "pairs": 3})


def test_cut_measure_reports_ratio_per_round():
    def reply(walls):
        return {"wall_s": walls, "cpu_s": walls, "minor_faults": [0] * len(walls)}

    workers = {
        OURS: FakeWorker({"iterations": [reply([50.0]), reply([2.0, 4.0]), reply([2.0, 2.0])]}),
        "official": FakeWorker({"iterations": [reply([50.0]), reply([6.0, 6.0]), reply([5.0, 7.0])]}),
    }
    out = cut_throughput.measure(workers, warmup=1, rounds=2, iters=2)
    # per-round medians: ours 3, 2; official 6, 6 -> ratios 2.0, 3.0
    assert out["wall_s_per_iter"]["ratio_to_ours"]["official"]["per_round"] == [2.0, 3.0]
    assert out["wall_s_per_iter"]["ratio_to_ours"]["official"]["median"] == 2.5
    assert workers[OURS].requests == [("iterations", {"n": 1}), ("iterations", {"n": 2}), ("iterations", {"n": 2})]


def fake_start(made):
    @contextlib.contextmanager
    def start(argvs, configs, threads, cwd):
        made.append([c.name for c in configs])
        yield curl_workers([c.name for c in configs])

    return start


def test_curl_without_official_dir_times_ours_alone_and_says_no_ratio(tmp_path, capsys):
    made = []
    curl_throughput.main(
        ["--out", str(tmp_path / "r"), "--rounds", "2", "--pairs", "3", "--batch-sizes", "128", "--device", "cpu"],
        start_workers=fake_start(made),
    )
    assert made == [[OURS]]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["official"]["measured"] is False
    assert result["updates"]["128"]["wall_s_per_update"]["ratio_to_ours"] == {}
    assert result["replay"]["ratio_to_ours"] == {}
    assert "no ratio to the official code was measured" in (tmp_path / "r.md").read_text()
    assert "no ratio to the official code was measured" in capsys.readouterr().err


def test_curl_with_official_dir_reports_the_ratio_in_json_and_markdown(tmp_path):
    made = []
    args = curl_args(official_dir=str(tmp_path))  # not a git checkout: its commit reads "unknown"
    result = curl_throughput.run(args, ["--official-dir", str(tmp_path)], fake_start(made))
    assert made == [[OURS, "official-glibc-default", "official-reuse"]]
    assert result["official"]["measured"] is True
    assert str(tmp_path) not in result["provenance"]["command"]  # the machine path is not recorded
    ratio = result["updates"]["128"]["wall_s_per_update"]["ratio_to_ours"]
    assert set(ratio) == {"official-glibc-default", "official-reuse"}
    assert ratio["official-reuse"]["median"] == pytest.approx(2.75)  # as in the test above
    text = curl_throughput.markdown(result)
    updates_table = text.split("## Seconds per update")[1].split("## Collection")[0]
    assert updates_table.count("| 128 | official-") == 2 and updates_table.count("2.75x [2.50, 3.00]") == 2
    assert "no ratio" not in text and "ours and the official code" in text.splitlines()[0]


def test_cut_without_official_dir_times_ours_alone_and_says_no_ratio(tmp_path):
    made = []

    @contextlib.contextmanager
    def start(argvs, configs, threads, cwd):
        made.append([c.name for c in configs])
        reply = {"wall_s": [1.0], "cpu_s": [1.0], "minor_faults": [0]}
        yield {c.name: FakeWorker({"iterations": [reply] * 3}) for c in configs}

    cut_throughput.main(
        [
            "--out",
            str(tmp_path / "r"),
            "--models",
            "fastcut",
            "--crops",
            "64",
            "--rounds",
            "2",
            "--iters",
            "1",
            "--device",
            "cpu",
        ],
        start_workers=start,
    )
    assert made == [[OURS]]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["official"]["measured"] is False
    assert [(r["model"], r["crop"]) for r in result["rows"]] == [("fastcut", 64)]
    assert result["rows"][0]["wall_s_per_iter"]["ratio_to_ours"] == {}
    assert "no ratio to the official code was measured" in (tmp_path / "r.md").read_text()


def never_start(*args):
    raise AssertionError("no worker may start for a bad --official-dir")


@pytest.mark.parametrize(
    ("script", "missing"), [(curl_throughput, "curl_sac.py"), (cut_throughput, "models/cut_model.py")]
)
def test_bad_official_dir_is_a_one_line_error_naming_the_path(tmp_path, script, missing):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "train.py").write_text("")  # a train.py alone is not the official code
    for path, reason in ((checkout, missing), (tmp_path / "absent", "not a directory")):
        with pytest.raises(SystemExit) as err:
            script.main(["--official-dir", str(path)], start_workers=never_start)
        message = str(err.value.code)
        assert "\n" not in message
        assert f"--official-dir {path}:" in message and reason in message and script.OFFICIAL_REPO in message


# ----------------------------------------------------------------------------------- processes
def test_worker_protocol_survives_prints_and_reports_errors(tmp_path):
    child = textwrap.dedent("""
        import os
        from benchmarks.side_by_side import protocol_stream, serve
        stream = protocol_stream()
        print("noise from the code under test")
        os.write(1, b"noise from C\\n")
        def add(a, b):
            print("more noise")
            return {"sum": a + b}
        def fail():
            raise KeyError("boom")
        serve({"add": add, "fail": fail}, stream, {"name": "child"})
    """)
    config = configurations(False)[0]
    with open_workers({OURS: [sys.executable, "-c", child]}, [config], 1, tmp_path) as workers:
        worker = workers[OURS]
        assert worker.info["name"] == "child" and worker.info["ready"] is True
        assert worker("add", a=2, b=3) == {"sum": 5}
        with pytest.raises(RuntimeError, match="KeyError: 'boom'"):
            worker("fail")
        assert worker("add", a=1, b=1) == {"sum": 2}  # still serving after an error
        assert worker.close()["peak_rss_bytes"] > 0
    assert "noise from the code under test" in (tmp_path / f"{OURS}.log").read_text()
    assert "noise from C" in (tmp_path / f"{OURS}.log").read_text()


ALLOCATION = textwrap.dedent("""
    import ctypes, ctypes.util, sys
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_long]
    if sys.argv[1:] == ["mallopt"]:
        from ssl_shared.host_memory import reuse_freed_host_memory
        assert reuse_freed_host_memory()
    block = libc.malloc(64 << 20)
    brk = libc.sbrk(0)
    libc.free(block)
    print(int(block < brk), int(libc.sbrk(0) == brk))  # from the heap; heap kept after free
""")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc allocator settings")
def test_official_reuse_worker_env_allocates_like_reuse_freed_host_memory(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "0")  # a parent's own setting must not reach the default worker

    def heap_use(config, *extra):
        out = subprocess.run(
            [sys.executable, "-c", ALLOCATION, *extra],
            env=worker_env(config, 1),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return tuple(map(int, out))

    ours, official_default, official_reuse = configurations(True)
    assert heap_use(ours, "mallopt") == (1, 1)  # the in-process setting our commands apply
    assert heap_use(official_reuse) == (1, 1)  # its environment form
    assert heap_use(official_default)[0] == 0  # glibc's default: a 64 MB block is mapped, not from the heap


# ----------------------------------------------------------------------------------- provenance
def test_hardware_reads_cpu_model_and_flags_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu sse avx2 avx512f\n\n"
        "processor\t: 1\nmodel name\t: Example CPU 9000\nflags\t\t: fpu sse avx2 avx512f\n"
    )
    hw = hardware(cpuinfo)
    assert hw["cpu"]["model"] == "Example CPU 9000"
    assert hw["cpu"]["flags"] == ["avx2", "avx512f"]


def test_command_line_hides_the_official_checkout_path():
    assert command_line("benchmarks/x.py", ["--official-dir", "/srv/a b", "--threads", "2"]) == (
        "python benchmarks/x.py --official-dir PATH --threads 2"
    )
    assert command_line("benchmarks/x.py", ["--official-dir=/srv/a", "--out", "r x"]) == (
        "python benchmarks/x.py --official-dir=PATH --out 'r x'"
    )


def test_cut_ours_precisions_time_one_worker_per_precision_with_ratios_to_each(tmp_path):
    def reply(walls):
        return {"wall_s": walls, "cpu_s": walls, "minor_faults": [0] * len(walls)}

    scripted_walls = {  # warm-up, then two rounds of 2 iterations
        OURS: [[9.0], [4.0, 4.0], [3.0, 5.0]],  # per-round medians 4, 4
        "ours-bf16": [[9.0], [2.0, 2.0], [3.0, 3.0]],  # 2, 3
        "official-glibc-default": [[9.0], [8.0, 8.0], [6.0, 6.0]],  # 8, 6
        "official-reuse": [[9.0], [6.0, 6.0], [6.0, 6.0]],  # 6, 6
    }
    made, specs = [], {}

    @contextlib.contextmanager
    def start(argvs, configs, threads, cwd):
        made.append([c.name for c in configs])
        specs.update({name: json.loads(argv[argv.index("--worker") + 1]) for name, argv in argvs.items()})
        yield {c.name: FakeWorker({"iterations": [reply(w) for w in scripted_walls[c.name]]}) for c in configs}

    args = cut_throughput.build_parser().parse_args(
        ["--models", "cut", "--crops", "64", "--rounds", "2", "--iters", "2", "--device", "cpu"]
        + ["--ours-precisions", "fp32", "bf16"]
    )
    args.official_dir = str(tmp_path)
    result = cut_throughput.run(args, [], None, start_workers=start)
    assert made == [[OURS, "ours-bf16", "official-glibc-default", "official-reuse"]]
    assert {n: s["precision"] for n, s in specs.items()} == {
        OURS: "fp32",
        "ours-bf16": "bf16",
        "official-glibc-default": None,
        "official-reuse": None,
    }
    wall = result["rows"][0]["wall_s_per_iter"]
    # relative to ours (fp32): bf16 2/4, 3/4; official 8/4, 6/4
    assert wall["ratio_to"][OURS]["ours-bf16"]["per_round"] == pytest.approx([0.5, 0.75])
    assert wall["ratio_to"][OURS]["official-glibc-default"]["median"] == pytest.approx(1.75)
    assert wall["ratio_to_ours"] == wall["ratio_to"][OURS]
    # relative to ours-bf16: fp32 4/2, 4/3; official 8/2, 6/3 and 6/2, 6/3
    assert wall["ratio_to"]["ours-bf16"][OURS]["per_round"] == pytest.approx([2.0, 4 / 3])
    assert wall["ratio_to"]["ours-bf16"]["official-glibc-default"]["per_round"] == pytest.approx([4.0, 2.0])
    assert wall["ratio_to"]["ours-bf16"]["official-reuse"]["median"] == pytest.approx(2.5)
    text = cut_throughput.markdown(result)
    assert "| ratio to ours | ratio to ours-bf16 |" in text
    assert "| ours-bf16 | ours | bf16 |" in text
    assert (
        "| cut | 64 | official-reuse | 6.00 / 6.00 | 6.00 | 6.00 | 0 | 2.00 | 1.50x [1.50, 1.50] | 2.50x [2.00, 3.00] |"
        in text
    )


def test_cut_ours_precisions_refuses_a_precision_given_twice():
    with pytest.raises(SystemExit, match="--ours-precisions fp32 fp32"):
        cut_throughput.main(["--ours-precisions", "fp32", "fp32"], start_workers=never_start)


def test_implied_100k_run_from_measured_rates_by_hand():
    from benchmarks.curl_throughput import implied_run_seconds

    result = {
        "collection": {
            "random_actions": {"env_steps_per_s": {"ours": 500.0}},
            "policy_actions": {"env_steps_per_s": {"ours": 400.0}},
        },
        "updates": {"128": {"wall_s_per_update": {"median": {"ours": 0.25}}}},
    }
    t = implied_run_seconds(result, "ours", "128")
    # 12,500 agent steps at action repeat 8: 1,000 random (8,000 env steps at 500/s = 16 s), then 11,500 updates
    # (x 0.25 s = 2,875 s) with 92,000 env steps at 400/s (230 s); 110 evaluation episodes: 110,000 / 400 = 275 s
    assert t == {"updates": 2875.0, "collection": 246.0, "evaluation": 275.0, "total": 3396.0}


def test_curl_worker_settings_name_what_each_worker_resolved():
    ours = {"precision": "bf16", "fused_encoder_step": True, "compile_encoders": False}
    assert curl_throughput.worker_settings(ours) == "bf16, fused_encoder_step"
    assert curl_throughput.worker_settings({"precision": "fp32", "compile_encoders": True}) == "fp32, compile_encoders"
    assert curl_throughput.worker_settings({"ready": True}) == "fp32 (the official code)"
