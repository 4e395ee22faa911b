"""CURL throughput, ours and the official code in one run: s/update, env steps/s collecting, replay bytes.

    MUJOCO_GL=egl nice -n 10 python benchmarks/curl_throughput.py --official-dir PATH --threads 2 \\
        --batch-sizes 128 512 --out benchmarks/results/curl_throughput_cpu_2threads

PATH is a checkout of https://github.com/MishaLaskin/curl supplied by the user (nothing is downloaded); its
code runs unmodified, imported with ``experiments/official_curl_shim`` first on ``sys.path`` (our stand-ins
for ``dmc2gym`` and old ``gym``), and it needs ``pip install scikit-image termcolor imageio``. Without
``--official-dir`` only our code is timed and the output says that no ratio was measured.

Settings, identical on both sides: cartpole-swingup, action repeat 8, 9x100x100 renders (frame stack 3)
cropped to 84, feature dim 50, 4 conv layers of 32 filters, MLPs 1024x2, replay capacity 100,000, the
same torch thread count (``OMP_NUM_THREADS`` and ``torch.set_num_threads``), the same device.

- ours: ``curl_agents.train``'s ``RunConfig`` / ``make_train_vec_env`` / ``build_model`` with its defaults
  and ``reuse_freed_host_memory()``, as ``python -m curl_agents.train`` runs it;
- official: ``train.py``'s ``parse_args`` on ``scripts/run.sh``'s flags (batch from ``--batch-sizes``,
  no ``--save_tb``), its ``make_agent``, ``utils.ReplayBuffer``, ``utils.FrameStack`` and ``Logger``, in
  two worker processes: glibc's default allocator (as shipped) and the environment form of our setting
  (see ``benchmarks/side_by_side.py``).

Measured, in rounds interleaved across the workers (``benchmarks/side_by_side.py``):

- updates: pairs of consecutive updates (the actor, alpha and target EMA run every second one), ours
  ``model.train(2, B)``, official ``agent.update(replay, L, step)`` twice with ``step`` counting on from
  ``init_steps``; seconds per update = pair / 2; ``--warmup-pairs`` per batch size are not timed;
- collection: env steps per second over ``--collect-steps`` agent steps with random actions and
  ``--policy-steps`` acting with the policy, storing every transition (ours ``model.learn`` without
  updates; official the body of ``train.py``'s loop without evaluation and updates);
- replay: bytes per transition as allocated (array bytes / capacity) and the RSS growth per stored
  transition over the timed collection rounds; peak RSS of each worker.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: import this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.side_by_side import (
    NO_OFFICIAL,
    OURS,
    REPO,
    Config,
    check_official_dir,
    command_line,
    compare_rounds,
    configurations,
    format_ratio,
    interleave,
    load_average,
    markdown_header,
    median_of_rounds,
    official_commit,
    open_workers,
    protocol_stream,
    rss_bytes,
    serve,
    time_calls,
    utc_now,
)

OFFICIAL_REPO = "https://github.com/MishaLaskin/curl"
OFFICIAL_FILES = ("train.py", "curl_sac.py", "utils.py", "logger.py")
OFFICIAL_IMPORTS = {"skimage": "scikit-image", "termcolor": "termcolor", "imageio": "imageio"}
SHIM = REPO / "experiments" / "official_curl_shim"
DOMAIN, TASK, ACTION_REPEAT = "cartpole", "swingup", 8
CODE_PATHS = (
    "benchmarks/*.py",
    "curl_agents",
    "ssl_shared",
    "experiments/official_curl_shim",
    "experiments/provenance.py",
)


def official_train_args(batch_size: int, seed: int, capacity: int) -> list[str]:
    """``scripts/run.sh`` of the official code (cartpole-swingup), minus ``--save_tb``, with our batch/seed."""
    from experiments.run_official_curl import run_sh_args

    return [*run_sh_args(seed), "--batch_size", str(batch_size), "--replay_buffer_capacity", str(capacity)]


#: Extra workers of our code with other settings than the command line's defaults (``--ours-variants``).
OURS_VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"precision": "fp32"},
    "bf16": {"precision": "bf16"},
    "fused": {"fused_encoder_step": True},
    "fp32_fused": {"precision": "fp32", "fused_encoder_step": True},
    "bf16_fused": {"precision": "bf16", "fused_encoder_step": True},
    "compiled": {"compile_encoders": True},
    "fp32_compiled": {"precision": "fp32", "compile_encoders": True},
    "fused_compiled": {"fused_encoder_step": True, "compile_encoders": True},
}


# ----------------------------------------------------------------------------------- workers
def _sync_for(device: Any) -> Callable[[], None] | None:
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else None


def _collect_reply(agent_steps: int, timing: dict[str, list[float]], rss_growth: int, added: int) -> dict:
    return {
        "env_steps": agent_steps * ACTION_REPEAT,
        "wall_s": timing["wall_s"][0],
        "cpu_s": timing["cpu_s"][0],
        "rss_growth_bytes": rss_growth,
        "transitions": added,
    }


def ours_worker(args: argparse.Namespace) -> None:
    stream = protocol_stream()
    import torch

    import curl_agents  # noqa: F401  (the torch side before dm_control)
    from curl_agents.run_config import RunConfig, resolve, resolve_runtime
    from curl_agents.train import build_model, make_train_vec_env
    from ssl_shared.host_memory import reuse_freed_host_memory

    reuse_freed_host_memory()  # as curl_agents.train.main
    torch.set_num_threads(args.threads)
    cfg = RunConfig(
        env=f"{DOMAIN}-{TASK}",
        seed=args.seed,
        device=args.device,
        buffer_size=args.capacity,
        batch_size=args.batch_sizes[0],
        threads=args.threads,
        **OURS_VARIANTS.get(args.variant or "", {}),
    )
    cfg = resolve_runtime(resolve(cfg)).config
    model = build_model(cfg, make_train_vec_env(cfg))
    sync = _sync_for(model.device)
    model.learning_starts = 10**12  # random actions until a request says otherwise

    def collect(agent_steps: int, policy: bool) -> dict:
        saved = model.learning_starts, model.gradient_steps
        if policy:  # act with the policy, no updates
            model.learning_starts, model.gradient_steps = 0, 0
        size, rss = model.replay_buffer.size(), rss_bytes()
        timing = time_calls(lambda: model.learn(agent_steps, reset_num_timesteps=False), 1, sync)
        model.learning_starts, model.gradient_steps = saved
        return _collect_reply(agent_steps, timing, rss_bytes() - rss, model.replay_buffer.size() - size)

    def updates(batch_size: int, pairs: int) -> dict:
        model.batch_size = batch_size
        return time_calls(lambda: model.train(2, batch_size), pairs, sync)

    def replay() -> dict:
        return {
            "bytes_per_transition": float(model.replay_buffer.bytes_per_transition()),
            "stored": model.replay_buffer.size(),
            "capacity": args.capacity,
        }

    serve(
        {"collect": collect, "updates": updates, "replay": replay},
        stream,
        {
            "device": str(model.device),
            "torch_threads": torch.get_num_threads(),
            "precision": model.resolved_precision,
            "fused_encoder_step": model.fused_encoder_step,
            "compile_encoders": model.compile_encoders,
        },
    )


def official_worker(args: argparse.Namespace) -> None:
    stream = protocol_stream()
    official_dir = Path(args.official_dir)
    sys.path[:0] = [str(SHIM), str(official_dir)]
    import torch
    import torchvision  # noqa: F401  (before dm_control, see docs/ARCHITECTURE.md; train.py imports it too)

    torch.set_num_threads(args.threads)
    sys.argv = ["train.py", *official_train_args(args.batch_sizes[0], args.seed, args.capacity)]
    import dmc2gym  # our stand-in (experiments/official_curl_shim), as train.py imports it
    import train as official_train  # the official modules
    import utils as official_utils
    from logger import Logger

    targs = official_train.parse_args()
    official_utils.set_seed_everywhere(targs.seed)
    env = dmc2gym.make(
        domain_name=targs.domain_name,
        task_name=targs.task_name,
        seed=targs.seed,
        visualize_reward=False,
        from_pixels=True,
        height=targs.pre_transform_image_size,
        width=targs.pre_transform_image_size,
        frame_skip=targs.action_repeat,
    )
    env.seed(targs.seed)
    env = official_utils.FrameStack(env, k=targs.frame_stack)
    device = torch.device(args.device)
    channels = 3 * targs.frame_stack
    pre_size, size = targs.pre_transform_image_size, targs.image_size
    replay_buffer = official_utils.ReplayBuffer(
        obs_shape=(channels, pre_size, pre_size),
        action_shape=env.action_space.shape,
        capacity=targs.replay_buffer_capacity,
        batch_size=targs.batch_size,
        device=device,
        image_size=size,
    )
    agent = official_train.make_agent(
        obs_shape=(channels, size, size), action_shape=env.action_space.shape, args=targs, device=device
    )
    logger = Logger(tempfile.mkdtemp(prefix="official_logs_", dir=Path.cwd()), use_tb=False)  # one per worker
    sync = _sync_for(device)
    state: dict[str, Any] = {"done": True, "obs": None, "episode_step": 0, "step": targs.init_steps}

    def env_step(policy: bool) -> None:  # train.py's loop body without evaluation, logging and updates
        if state["done"]:
            state["obs"], state["done"], state["episode_step"] = env.reset(), False, 0
        if policy:
            with official_utils.eval_mode(agent):
                action = agent.sample_action(state["obs"])
        else:
            action = env.action_space.sample()
        next_obs, reward, done, _ = env.step(action)
        done_bool = 0 if state["episode_step"] + 1 == env._max_episode_steps else float(done)
        replay_buffer.add(state["obs"], action, reward, next_obs, done_bool)
        state["obs"], state["done"] = next_obs, done
        state["episode_step"] += 1

    def stored() -> int:
        return replay_buffer.capacity if replay_buffer.full else replay_buffer.idx

    def collect(agent_steps: int, policy: bool) -> dict:
        before, rss = stored(), rss_bytes()
        timing = time_calls(lambda: [env_step(policy) for _ in range(agent_steps)], 1, sync)
        return _collect_reply(agent_steps, timing, rss_bytes() - rss, stored() - before)

    def update_pair() -> None:
        for _ in range(2):
            agent.update(replay_buffer, logger, state["step"])
            state["step"] += 1

    def updates(batch_size: int, pairs: int) -> dict:
        replay_buffer.batch_size = batch_size
        return time_calls(update_pair, pairs, sync)

    def replay() -> dict:
        arrays = ("obses", "next_obses", "actions", "rewards", "not_dones")
        nbytes = sum(getattr(replay_buffer, name).nbytes for name in arrays)
        return {
            "bytes_per_transition": nbytes / replay_buffer.capacity,
            "stored": stored(),
            "capacity": replay_buffer.capacity,
        }

    serve(
        {"collect": collect, "updates": updates, "replay": replay},
        stream,
        {"device": str(device), "torch_threads": torch.get_num_threads()},
    )


# ----------------------------------------------------------------------------------- the benchmark
WorkerCall = Callable[..., dict]


def measure(workers: Mapping[str, WorkerCall], args: argparse.Namespace) -> dict[str, Any]:
    """Collection, updates and replay, interleaved over ``workers`` (name -> request function)."""
    for call in workers.values():  # first resets, renderer, buffers and policy forward passes: not timed
        call("collect", agent_steps=args.warmup_collect_steps, policy=False)
        call("collect", agent_steps=args.warmup_collect_steps, policy=True)

    def collection(agent_steps: int, policy: bool) -> dict[str, Any]:
        replies = interleave(
            {n: (lambda c=c: c("collect", agent_steps=agent_steps, policy=policy)) for n, c in workers.items()},
            args.rounds,
        )
        cost = {n: [[r["wall_s"] / r["env_steps"]] for r in rs] for n, rs in replies.items()}
        out = compare_rounds(cost)
        out["env_steps_per_s"] = {n: 1.0 / s for n, s in out["median"].items()}
        out["rss_growth_per_transition"] = {
            n: sum(r["rss_growth_bytes"] for r in rs) / max(1, sum(r["transitions"] for r in rs))
            for n, rs in replies.items()
        }
        return out

    result: dict[str, Any] = {
        "collection": {
            "random_actions": collection(args.collect_steps, False),
            "policy_actions": collection(args.policy_steps, True),
        }
    }
    result["updates"] = {}
    for batch in args.batch_sizes:
        for call in workers.values():
            call("updates", batch_size=batch, pairs=args.warmup_pairs)
        replies = interleave(
            {n: (lambda c=c, b=batch: c("updates", batch_size=b, pairs=args.pairs)) for n, c in workers.items()},
            args.rounds,
        )
        wall = compare_rounds({n: [[s / 2 for s in r["wall_s"]] for r in rs] for n, rs in replies.items()})
        cpu = compare_rounds({n: [[s / 2 for s in r["cpu_s"]] for r in rs] for n, rs in replies.items()})
        faults = median_of_rounds({n: [[f / 2 for f in r["minor_faults"]] for r in rs] for n, rs in replies.items()})
        result["updates"][str(batch)] = {
            "wall_s_per_update": wall,
            "cpu_s_per_update": cpu,
            "minor_faults_per_update": faults,
        }
    replay = {n: call("replay") for n, call in workers.items()}
    result["replay"] = {
        "allocated": replay,
        "ratio_to_ours": {
            n: r["bytes_per_transition"] / replay[OURS]["bytes_per_transition"] for n, r in replay.items() if n != OURS
        },
    }
    return result


def worker_argv(config: Config, args: argparse.Namespace, device: str) -> list[str]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        config.impl,
        "--device",
        device,
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
        "--capacity",
        str(args.capacity),
        "--batch-sizes",
        *map(str, args.batch_sizes),
    ]
    if config.impl == "official":
        argv += ["--official-dir", str(args.official_dir)]
    if config.name.startswith(f"{OURS}-"):
        argv += ["--variant", config.name[len(OURS) + 1 :]]
    return argv


def run(args: argparse.Namespace, argv: Sequence[str], start_workers: Callable = open_workers) -> dict[str, Any]:
    """Start the workers (``start_workers``: :func:`open_workers` or a stand-in), measure, add provenance."""
    import torch

    from ssl_shared.provenance import git_commit, hardware, package_versions

    device = (
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    configs = configurations(args.official_dir is not None)
    configs[1:1] = [Config(f"{OURS}-{v}", "ours", configs[0].allocator) for v in args.ours_variants]
    start, load_before = time.time(), load_average()
    with tempfile.TemporaryDirectory(prefix="curl_throughput_") as tmp:
        argvs = {c.name: worker_argv(c, args, device) for c in configs}
        with start_workers(argvs, configs, args.threads, Path(tmp)) as workers:
            ready = {n: w.info for n, w in workers.items()}
            result = measure(workers, args)
            peak = {n: w.close()["peak_rss_bytes"] for n, w in workers.items()}
    result.update(
        benchmark="curl_throughput",
        device=device,
        workers=ready,
        peak_rss_bytes=peak,
        configurations={c.name: {"code": c.impl, "allocator": c.allocator} for c in configs},
        settings={
            "task": f"{DOMAIN}-{TASK}",
            "action_repeat": ACTION_REPEAT,
            "render": 100,
            "crop": 84,
            "frame_stack": 3,
            "feature_dim": 50,
            "hidden_dim": 1024,
            "conv": "4 x 32",
            **{
                k: getattr(args, k)
                for k in (
                    "batch_sizes",
                    "threads",
                    "rounds",
                    "pairs",
                    "warmup_pairs",
                    "collect_steps",
                    "policy_steps",
                    "capacity",
                    "seed",
                )
            },
        },
        official=(
            {"measured": True, "repository": OFFICIAL_REPO, **official_commit(Path(args.official_dir))}
            if args.official_dir
            else {"measured": False, "note": NO_OFFICIAL}
        ),
        provenance={
            "command": command_line("benchmarks/curl_throughput.py", argv),
            "git_commit": git_commit(paths=CODE_PATHS),
            "hardware": hardware(),
            "torch_threads": args.threads,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "wall_time_s": round(time.time() - start, 1),
            "date_utc": utc_now(),
            "seed": args.seed,
            "versions": package_versions(
                [
                    "torch",
                    "numpy",
                    "stable-baselines3",
                    "gymnasium",
                    "dm-control",
                    "mujoco",
                    "scikit-image",
                    "termcolor",
                    "imageio",
                ]
            ),
        },
    )
    return result


def _cell(values: Mapping[str, float], name: str, fmt: str) -> str:
    return format(values[name], fmt) if name in values else "-"


def worker_settings(info: Mapping[str, Any]) -> str:
    """Precision and the optional update settings a worker reported (the official code: fp32, its own order)."""
    if "precision" not in info:
        return "fp32 (the official code)"
    extras = [name for name in ("fused_encoder_step", "compile_encoders") if info.get(name)]
    return ", ".join([info["precision"], *extras])


def markdown(result: Mapping[str, Any]) -> str:
    names = list(result["configurations"])
    lines = markdown_header("CURL throughput", result)
    s = result["settings"]
    lines += [
        f"Settings: {s['task']}, action repeat {s['action_repeat']}, render {s['render']} -> crop {s['crop']}, "
        f"stack {s['frame_stack']}, feature {s['feature_dim']}, MLP {s['hidden_dim']}x2, conv {s['conv']}, "
        f"replay capacity {s['capacity']}; {s['rounds']} rounds interleaved across the workers (first worker "
        f"rotating); per round and worker: {s['pairs']} timed pair(s) of updates (after {s['warmup_pairs']} warm-up "
        f"pair(s) per batch size), {s['collect_steps']} agent steps with random actions and {s['policy_steps']} "
        "acting with the policy.",
        "",
        "| worker | code | settings (ours: as resolved in the worker) | allocator | peak RSS GB |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        c = result["configurations"][n]
        lines.append(
            f"| {n} | {c['code']} | {worker_settings(result.get('workers', {}).get(n, {}))} | {c['allocator']} | "
            f"{result['peak_rss_bytes'][n] / 1e9:.2f} |"
        )
    lines += [
        "",
        "## Seconds per update (median of per-round medians; a pair of updates / 2)",
        "",
        "Ratio = that worker's time / ours, per round; median [min, max] over rounds (> 1: ours is faster).",
        "",
        "| batch | worker | wall s per round | wall s | CPU s | minor faults | ratio to ours |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch, u in result["updates"].items():
        wall, cpu = u["wall_s_per_update"], u["cpu_s_per_update"]
        for n in names:
            rounds = " / ".join(f"{v:.3f}" for v in wall["per_round"][n])
            lines.append(
                f"| {batch} | {n} | {rounds} | {wall['median'][n]:.3f} | {cpu['median'][n]:.3f} | "
                f"{u['minor_faults_per_update'][n]:.0f} | {format_ratio(wall['ratio_to_ours'].get(n))} |"
            )
    lines += [
        "",
        "## Collection (env steps per second, storing every transition)",
        "",
        "Ratio = ours env steps/s / that worker's, per round; median [min, max] over rounds (> 1: ours is faster).",
        "",
        "| actions | worker | env steps/s per round | env steps/s | RSS growth B per transition | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for kind, c in result["collection"].items():
        for n in names:
            rounds = " / ".join(f"{1 / v:.0f}" for v in c["per_round"][n])
            lines.append(
                f"| {kind.replace('_', ' ')} | {n} | {rounds} | {c['env_steps_per_s'][n]:.0f} | "
                f"{c['rss_growth_per_transition'][n]:,.0f} | {format_ratio(c['ratio_to_ours'].get(n))} |"
            )
    lines += [
        "",
        "## Replay bytes per transition (allocated array bytes / capacity)",
        "",
        "| worker | bytes per transition | ratio to ours | stored at the end |",
        "|---|---|---|---|",
    ]
    for n in names:
        r = result["replay"]["allocated"][n]
        lines.append(
            f"| {n} | {r['bytes_per_transition']:,.0f} | "
            f"{_cell(result['replay']['ratio_to_ours'], n, '.2f')} | {r['stored']} |"
        )
    return "\n".join(lines + implied_run_lines(result)) + "\n"


#: The CURL paper's 100K-env-step cartpole-swingup run: action repeat 8, 1000 random agent steps, then one
#: update per agent step; 10 evaluation episodes of 1000 env steps at 0, every 10K env steps and at the end.
IMPLIED_RUN = {"env_steps": 100_000, "action_repeat": 8, "init_agent_steps": 1000, "eval_env_steps": 11 * 10 * 1000}


def implied_run_seconds(result: Mapping[str, Any], worker: str, batch: str) -> dict[str, float]:
    """Wall seconds of :data:`IMPLIED_RUN` from this benchmark's measured rates for ``worker``: updates x the
    median update time + training env steps at the random-action rate for the random warm-up and the
    policy-action rate after it + evaluation env steps at the policy-action rate."""
    run = IMPLIED_RUN
    agent_steps = run["env_steps"] // run["action_repeat"]
    updates = agent_steps - run["init_agent_steps"]
    random_rate = result["collection"]["random_actions"]["env_steps_per_s"][worker]
    policy_rate = result["collection"]["policy_actions"]["env_steps_per_s"][worker]
    update_s = result["updates"][batch]["wall_s_per_update"]["median"][worker]
    collect_s = (
        run["init_agent_steps"] * run["action_repeat"] / random_rate + updates * run["action_repeat"] / policy_rate
    )
    parts = {"updates": updates * update_s, "collection": collect_s, "evaluation": run["eval_env_steps"] / policy_rate}
    return {**parts, "total": sum(parts.values())}


def implied_run_lines(result: Mapping[str, Any]) -> list[str]:
    """A markdown section: the wall time a 100K-env-step run would take with each worker's measured rates."""
    names = list(result["peak_rss_bytes"])
    lines = [
        "",
        "## Implied 100K-env-step cartpole-swingup run (computed from the rates above, not a measured run)",
        "",
        "11,500 updates after 1,000 random agent steps, 100K training env steps and 110 evaluation episodes "
        "(10 at 0, every 10K and at the end) at the measured update and collection rates of each worker.",
        "",
        "| batch | worker | updates h | collection h | evaluation h | total h | ratio to ours |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in result["updates"]:
        ours = implied_run_seconds(result, OURS, batch)["total"]
        for n in names:
            t = implied_run_seconds(result, n, batch)
            ratio = "-" if n == OURS else f"{t['total'] / ours:.2f}x"
            lines.append(
                f"| {batch} | {n} | {t['updates'] / 3600:.2f} | {t['collection'] / 3600:.2f} | "
                f"{t['evaluation'] / 3600:.2f} | {t['total'] / 3600:.2f} | {ratio} |"
            )
    return lines


def write_result(result: Mapping[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official-dir", help=f"a checkout of {OFFICIAL_REPO} (without it: ours alone, no ratio)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (both codes run on it)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every worker (OMP_NUM_THREADS too)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--pairs", type=int, default=3, help="timed pairs of updates per round and worker")
    p.add_argument("--warmup-pairs", type=int, default=2, help="untimed pairs per batch size and worker")
    p.add_argument("--collect-steps", type=int, default=100, help="agent steps per round, random actions")
    p.add_argument("--policy-steps", type=int, default=50, help="agent steps per round, acting with the policy")
    p.add_argument("--warmup-collect-steps", type=int, default=10)
    p.add_argument("--capacity", type=int, default=100_000, help="replay capacity in transitions (both)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--out",
        default=None,
        help="result path without suffix (default benchmarks/results/curl_throughput_<device>_<threads>threads)",
    )
    p.add_argument(
        "--ours-variants",
        nargs="*",
        default=[],
        choices=sorted(OURS_VARIANTS),
        help="extra workers of our code with these settings, timed in the same rounds (the 'ours' worker runs "
        "the command line's defaults, e.g. precision auto)",
    )
    p.add_argument("--worker", choices=("ours", "official"), help=argparse.SUPPRESS)
    p.add_argument("--variant", choices=sorted(OURS_VARIANTS), help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None, start_workers: Callable = open_workers) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.worker == "ours":
        return ours_worker(args)
    if args.worker == "official":
        return official_worker(args)
    if args.official_dir is not None:
        try:
            args.official_dir = str(check_official_dir(args.official_dir, OFFICIAL_FILES, OFFICIAL_REPO))
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        missing = [pkg for module, pkg in OFFICIAL_IMPORTS.items() if _missing(module)]
        if missing:
            raise SystemExit(
                f"error: the official CURL code imports {', '.join(missing)}: pip install " + " ".join(missing)
            )
    else:
        print(NO_OFFICIAL, file=sys.stderr)
    result = run(args, argv, start_workers)
    out = Path(
        args.out or REPO / "benchmarks" / "results" / f"curl_throughput_{result['device']}_{args.threads}threads"
    )
    write_result(result, out)
    print(markdown(result))


def _missing(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is None


if __name__ == "__main__":
    main()
