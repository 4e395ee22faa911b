"""Probe every SSL method on two offline datasets against random-init and supervised encoders.

For each dataset — (i) DeepMind Control frames with the true physical state (linear-probe R^2) and
(ii) scikit-learn digits (linear-probe and k-NN accuracy) — every method in ``ssl_shared.methods``
trains the same backbone for the same number of steps with ``ssl_shared.train``; then the frozen
encoder is probed. Two references use the identical backbone and budget:

- ``random_init``: the untrained backbone;
- ``supervised``: the backbone trained on the labels (cross-entropy for digits, MSE on standardised
  states for DMC) with the same optimiser and steps.

The table reports, honestly, where a method does not beat random init at this (small, CPU) budget.

Usage:
    python -m experiments.ssl_probe_table --steps 100 --batch-size 32 --out experiments/results/ssl_probe_table

Runs already finished under runs/ssl_probe_table/ (a probe.json) are reused and interrupted ones resume from
their checkpoint, so an interrupted table resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ssl_shared.data import build_dataset
from ssl_shared.evaluation import extract_features, knn_classify, linear_probe_classification, linear_probe_regression
from ssl_shared.run_dir import CheckpointStore
from ssl_shared.train import CHECKPOINTS, TrainerConfig, build_backbone, seed_everything, train

DATASETS = {"digits": "digits", "dmc": "dmc:cartpole-swingup"}


def probe_backbone(backbone: torch.nn.Module, config: TrainerConfig) -> dict:
    train_ds = build_dataset(config.data, "train", config.image_size)
    test_ds = build_dataset(config.data, "test", config.image_size)
    tx, ty = extract_features(backbone, train_ds)
    vx, vy = extract_features(backbone, test_ds)
    if ty.is_floating_point():
        return {"linear_probe_r2": linear_probe_regression(tx, ty, vx, vy)}
    return {
        "linear_probe_accuracy": linear_probe_classification(tx, ty, vx, vy),
        "knn_accuracy": knn_classify(tx, ty, vx, vy),
    }


def supervised_baseline(config: TrainerConfig) -> dict:
    """Same backbone, optimiser and steps, trained on the labels through a linear head."""
    seed_everything(config.seed)
    dataset = build_dataset(config.data, "train", config.image_size)
    backbone = build_backbone(config, dataset[0]["image"].shape[0])
    regression = dataset[0]["label"].is_floating_point() if torch.is_tensor(dataset[0]["label"]) else False
    out_dim = dataset[0]["label"].numel() if regression else 10
    head = torch.nn.Linear(config.feature_dim, out_dim)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if regression:
        all_y = torch.stack([dataset[i]["label"] for i in range(len(dataset))])
        mean, std = all_y.mean(0), all_y.std(0).clamp_min(1e-6)
    step = 0
    gen = torch.Generator().manual_seed(config.seed)
    while step < config.steps:
        for batch in DataLoader(dataset, config.batch_size, shuffle=True, drop_last=True, generator=gen):
            pred = head(backbone(batch["image"]))
            if regression:
                loss = F.mse_loss(pred, (batch["label"] - mean) / std)
            else:
                loss = F.cross_entropy(pred, batch["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= config.steps:
                break
    return probe_backbone(backbone, config)


def run(methods: list[str], datasets: list[str], base: TrainerConfig, out: Path) -> list[dict]:
    from ssl_shared.methods import METHODS

    rows = []
    for ds_name in datasets:
        config = replace(base, data=DATASETS[ds_name])
        seed_everything(config.seed)
        sample = build_dataset(config.data, "train", config.image_size)[0]["image"]
        t0 = time.time()
        rows.append(
            {
                "dataset": ds_name,
                "method": "random_init",
                **probe_backbone(build_backbone(config, sample.shape[0]), config),
                "wall_s": time.time() - t0,
            }
        )
        t0 = time.time()
        rows.append(
            {"dataset": ds_name, "method": "supervised", **supervised_baseline(config), "wall_s": time.time() - t0}
        )
        for name in methods:
            method_cls = METHODS[name]
            needs_frames = "frames" in getattr(method_cls, "required_inputs", set())
            if needs_frames and ds_name != "dmc":
                rows.append({"dataset": ds_name, "method": name, "skipped": "needs frame sequences (dmc only)"})
                continue
            if "label" in getattr(method_cls, "required_inputs", set()) and ds_name == "dmc":
                rows.append({"dataset": ds_name, "method": name, "skipped": "needs class labels (digits only)"})
                continue
            cfg = replace(
                config,
                method=name,
                out=str(Path("runs/ssl_probe_table") / ds_name / name),
                sequence_length=8 if needs_frames else 1,
            )
            t0 = time.time()
            done = Path(cfg.out) / "probe.json"
            try:
                if done.exists():  # finished in an earlier invocation: reuse (the table script is resumable)
                    result = json.loads(done.read_text())
                    t0 -= result.get("wall_time_s", 0.0)
                else:  # an interrupted run continues from its checkpoint
                    started = CheckpointStore(Path(cfg.out) / CHECKPOINTS).latest() is not None
                    result = train(replace(cfg, resume=started))
                rows.append(
                    {
                        "dataset": ds_name,
                        "method": name,
                        **{k: v for k, v in result.items() if k.startswith(("linear", "knn", "loss"))},
                        "wall_s": time.time() - t0,
                    }
                )
            except Exception as err:  # a failing method is reported in the table, not hidden
                rows.append({"dataset": ds_name, "method": name, "error": f"{type(err).__name__}: {err}"[:200]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def to_markdown(rows: list[dict], base: TrainerConfig, provenance: dict) -> str:
    lines = ["# SSL methods: linear-probe scores on offline data", ""]
    lines += [f"- {k}: {v}" for k, v in provenance.items()]
    lines += [
        f"- budget per method: {base.steps} steps, batch {base.batch_size}, {base.image_size}px, backbone "
        f"{base.backbone} widths {base.widths} -> {base.feature_dim}-d, AdamW lr {base.lr}",
        "- one seed, one short budget: differences of a few points are within run-to-run noise (not measured here);",
        "  `s4l` and `supcon` train on the digits labels (semi-/fully supervised), so they are not pure SSL;",
        "  temporal methods read 8-frame sequences of the DMC rollouts; the probe is ridge regression (DMC) or",
        "  softmax regression (digits) on frozen, standardised features, evaluated on held-out episodes / images.",
        "",
    ]
    for ds in sorted({r["dataset"] for r in rows}):
        ds_rows = [r for r in rows if r["dataset"] == ds]
        metric = "linear_probe_r2" if ds == "dmc" else "linear_probe_accuracy"
        random_score = next(r[metric] for r in ds_rows if r["method"] == "random_init")
        lines += [f"## {ds} ({'state R^2' if ds == 'dmc' else 'accuracy'})", ""]
        header = "| method | linear probe | k-NN | beats random init? | final SSL loss | wall s |"
        lines += [header, "|---|---|---|---|---|---|"]
        for r in ds_rows:
            if "skipped" in r or "error" in r:
                lines.append(f"| {r['method']} | - | - | {r.get('skipped') or 'ERROR: ' + r['error']} | - | - |")
                continue
            knn = f"{r['knn_accuracy']:.3f}" if "knn_accuracy" in r else "-"
            beats = "-" if r["method"] == "random_init" else ("yes" if r[metric] > random_score else "no")
            loss = f"{r['loss']:.4f}" if "loss" in r else "-"
            lines.append(f"| {r['method']} | {r[metric]:.3f} | {knn} | {beats} | {loss} | {r.get('wall_s', 0):.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering of the DMC frames
    from ssl_shared.methods import METHODS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--methods", nargs="*", default=None, help=f"default: all of {sorted(METHODS)}")
    parser.add_argument("--datasets", nargs="*", default=sorted(DATASETS), choices=sorted(DATASETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/ssl_probe_table"))
    args = parser.parse_args(argv)
    methods = args.methods or sorted(METHODS)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"error: unknown methods {unknown}; available: {sorted(METHODS)}")
    base = TrainerConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        image_size=args.image_size,
        widths=(16, 32, 64),
        feature_dim=64,
        seed=args.seed,
        checkpoint_every=10**9,
        log_every=25,
    )
    t0 = time.time()
    rows = run(methods, args.datasets, base, args.out)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    provenance = {
        "command": "python -m experiments.ssl_probe_table " + " ".join(sys.argv[1:] if argv is None else argv),
        "git commit": commit,
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, CPU only",
        "versions": f"python {platform.python_version()}, torch {torch.__version__}",
        "seed": args.seed,
        "wall time (s)": round(time.time() - t0),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (args.out.with_suffix(".json")).write_text(json.dumps({"provenance": provenance, "rows": rows}, indent=2))
    (args.out.with_suffix(".md")).write_text(to_markdown(rows, base, provenance))
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
