"""Each library imports with only the dependencies of its extra, so the optional-dependency split cannot rot.

Every check imports modules in a fresh interpreter whose import system refuses the top-level packages the
extra does not install (the blocked names), so a stray module-level import fails here, not on a user's
machine.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OPTIONAL = ["tqdm", "tensorboard", "sklearn", "dm_control", "mujoco", "gymnasium", "stable_baselines3", "matplotlib",
            "scipy", "rliable", "submitit", "pandas"]  # fmt: skip
OUR_OTHERS = ["curl_agents", "cut_translation", "experiments", "benchmarks"]

CASES = {
    # pip install ssl-control-vision: torch, torchvision, numpy
    "core": (
        ["ssl_shared", "ssl_shared.augment", "ssl_shared.losses", "ssl_shared.methods", "ssl_shared.encoders",
         "ssl_shared.heads", "ssl_shared.momentum", "ssl_shared.queues", "ssl_shared.precision", "ssl_shared.cli",
         "ssl_shared.run_dir", "ssl_shared.errors", "ssl_shared.provenance", "ssl_shared.evaluation"],
        OPTIONAL + OUR_OTHERS,
    ),
    # [train]
    "train": (["ssl_shared.train"], [m for m in OPTIONAL if m not in ("tqdm", "tensorboard", "sklearn")] + OUR_OTHERS),
    # [rl]: nothing of the translation side or the experiment layer
    "rl": (["curl_agents", "curl_agents.train", "curl_agents.objectives", "curl_agents.algorithms"],
           ["cut_translation", "experiments", "benchmarks", "rliable", "submitit"]),
    # [translation]: nothing of the RL side or the experiment layer
    "translation": (["cut_translation", "cut_translation.cli", "cut_translation.trainer", "cut_translation.metrics",
                     "cut_translation.models"],
                    ["curl_agents", "stable_baselines3", "gymnasium", "dm_control", "mujoco", "experiments",
                     "benchmarks", "rliable", "submitit"]),
}  # fmt: skip

SCRIPT = textwrap.dedent(
    """
    import importlib, importlib.abc, sys
    blocked = set(sys.argv[1].split(","))

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ImportError(f"{name} is not installed by this extra")
            return None

    sys.meta_path.insert(0, Refuse())
    for module in sys.argv[2].split(","):
        importlib.import_module(module)
    if "ssl_shared.methods" in sys.argv[2]:  # build and step one method: lazy imports run too
        import torch
        from ssl_shared.encoders import SmallResNet
        from ssl_shared.methods import build_method
        method = build_method("simclr", SmallResNet(3, 16, widths=(8, 16)), 16)
        loss, _ = method.training_step({"image": torch.rand(4, 3, 16, 16)}, step=0, total_steps=1)
        loss.backward()
    print("ok")
    """
)


@pytest.mark.parametrize("extra", sorted(CASES))
def test_package_imports_with_only_its_extra(extra):
    modules, blocked = CASES[extra]
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(blocked), ",".join(modules)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "", "MUJOCO_GL": "egl"},
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_the_wheel_holds_the_three_libraries_and_prefixed_commands_that_resolve(tmp_path):
    import importlib
    import shutil
    import zipfile

    pytest.importorskip("setuptools")
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, source / name)
    for name in ("ssl_shared", "curl_agents", "cut_translation"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*build, str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        commands = [line for line in archive.read(entry_points).decode().splitlines() if " = " in line]
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"ssl_shared", "curl_agents", "cut_translation"}  # no top-level "experiments" or "tests"
    assert commands and all(line.startswith("scv-") for line in commands), commands
    for line in commands:
        module, function = line.split(" = ")[1].split(":")
        assert callable(getattr(importlib.import_module(module), function))
