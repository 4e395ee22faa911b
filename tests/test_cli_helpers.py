"""Command lines derived from config dataclasses; one-line errors with exit codes 2 and 3."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from ssl_shared.cli import OneLineArgumentParser, add_dataclass_options, command, explicit_values, field_help
from ssl_shared.precision import resolve_precision
from ssl_shared.provenance import relative_command


@dataclass
class ToyConfig:
    env_steps: int = 100  # training budget in environment steps
    lr: float | None = None  # None: the task preset
    name: str = field(default="a", metadata={"help": "a registry name", "choices": lambda: ["a", "b"]})
    video: bool = True  # write a GIF of the last evaluation
    widths: tuple[int, ...] = (32, 64)  # stage widths
    options: dict = field(default_factory=dict)  # JSON options
    mode: Literal["x", "y"] = "x"  # the mode


def _parse(argv):
    parser = OneLineArgumentParser(prog="toy")
    add_dataclass_options(parser, ToyConfig)
    return explicit_values(parser.parse_args(argv), ToyConfig)


def test_only_given_flags_are_returned_with_their_types():
    assert _parse([]) == {}
    values = _parse(
        [
            "--env-steps",
            "5",
            "--lr",
            "2e-4",
            "--no-video",
            "--widths",
            "8",
            "16",
            "--options",
            '{"k": 1}',
            "--name",
            "b",
            "--mode",
            "y",
        ]
    )
    assert values == {
        "env_steps": 5,
        "lr": 2e-4,
        "video": False,
        "widths": (8, 16),
        "options": {"k": 1},
        "name": "b",
        "mode": "y",
    }
    assert ToyConfig(**values).widths == (8, 16)


def test_help_text_comes_from_the_field_comment_or_metadata():
    helps = field_help(ToyConfig)
    assert helps["env_steps"] == "training budget in environment steps"
    assert helps["name"] == "a registry name"
    parser = argparse.ArgumentParser()
    add_dataclass_options(parser, ToyConfig)
    text = parser.format_help()
    assert "training budget in environment steps (default: 100)" in text
    assert "None: the task preset (default: preset/auto)" in text


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--env-steps", "ten"], "argument --env-steps: invalid int value: 'ten'"),
        (["--options", "[1, 2]"], "expected a JSON object"),
        (["--options", "{bad"], "not valid JSON"),
        (["--name", "c"], "invalid choice: 'c'"),
        (["--unknown", "1"], "unrecognized arguments: --unknown 1"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("toy: error: ") and expected in err


SCRIPT = textwrap.dedent(
    """
    import sys
    from ssl_shared.cli import command
    from ssl_shared.errors import NonFiniteLossError, UserError

    @command("toy")
    def main(argv=None):
        kind = sys.argv[1]
        if kind == "user":
            raise UserError("--data /nope: folder not found;\\n allowed: a folder with trainA/")
        if kind == "nan":
            raise NonFiniteLossError("critic_loss", float("nan"), 7)
        if kind == "bug":
            raise KeyError("internal")
        return 1  # a truthy return value must not become the exit status

    main()
    """
)


@pytest.mark.parametrize(
    "kind, code, stderr_has",
    [
        ("ok", 0, None),
        ("user", 2, "toy: error: --data /nope: folder not found; allowed: a folder with trainA/"),
        ("nan", 3, "toy: error: non-finite critic_loss (nan) at step 7"),
        ("bug", 1, "Traceback"),
    ],
)
def test_command_exit_codes(kind, code, stderr_has):
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, kind], capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": ""}
    )
    assert result.returncode == code
    if stderr_has is None:
        assert result.stderr == ""
    else:
        assert stderr_has in result.stderr
        if code in (2, 3):
            assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_command_decorator_returns_none_on_success():
    @command("toy")
    def main(argv=None):
        return 5

    assert main([]) is None


def test_relative_command_writes_repo_paths_relative(tmp_path):
    from ssl_shared.provenance import REPO

    module = str(REPO / "curl_agents" / "train.py")
    assert relative_command([module, "--out", str(REPO / "runs" / "x")]) == "python -m curl_agents.train --out runs/x"
    script = str(REPO / "benchmarks" / "augment_bench.py")
    assert relative_command([script, "--n", "3"]) == "python benchmarks/augment_bench.py --n 3"
    assert relative_command(["/usr/bin/scv-cut-train", "--data", "d"]) == "scv-cut-train --data d"


@pytest.mark.parametrize(
    "flags, expected",
    [({"avx2", "fma"}, "fp32"), ({"avx2", "avx512f", "avx512_bf16"}, "bf16"), ({"avx2", "amx_bf16"}, "bf16")],
)
def test_auto_precision_follows_the_cpu_matrix_units(flags, expected):
    assert resolve_precision("auto", "cpu", flags, torch_capability="AVX512", onednn_max_isa="") == expected
    assert resolve_precision("fp32", "cpu", flags, torch_capability="AVX512", onednn_max_isa="") == "fp32"


@pytest.mark.parametrize(
    "capability, onednn, expected",
    [("AVX2", "", "fp32"), ("AVX512", "AVX2", "fp32"), ("AVX512", "avx512_core", "fp32"), ("DEFAULT", "", "fp32"),
     ("AVX512", "AVX512_CORE_AMX", "bf16"), ("AVX512", "ALL", "bf16")],
)  # fmt: skip
def test_auto_precision_stays_fp32_where_torch_is_kept_below_the_bf16_instructions(capability, onednn, expected):
    """An AMX CPU whose torch kernels run at AVX2 (``ATEN_CPU_CAPABILITY=avx2``) or whose oneDNN is capped below
    AVX-512 BF16 (``ONEDNN_MAX_CPU_ISA``) cannot use its bf16 units: ``auto`` is fp32 there."""
    amx = {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    assert resolve_precision("auto", "cpu", amx, torch_capability=capability, onednn_max_isa=onednn) == expected


def test_auto_precision_reads_the_caps_of_this_process():
    """A process started with the caps (a subprocess: torch reads them at start) resolves ``auto`` to fp32
    even when told the CPU has AMX: its kernel level and oneDNN cap are read from the running torch."""
    import os
    import subprocess
    import sys

    code = "from ssl_shared.precision import resolve_precision as r; print(r('auto', 'cpu', {'amx_bf16'}))"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "fp32"
