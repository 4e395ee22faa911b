"""The CURL parity summary: group means, the difference to fp32 and its interval, from hand-made files."""

from __future__ import annotations

import json

import pytest

from experiments import curl_parity


def test_difference_of_constant_groups_is_exact_and_its_interval_collapses():
    assert curl_parity.difference_ci([230.0] * 3, [210.0] * 5) == (20.0, 20.0, 20.0)


def test_verdict_follows_whether_the_interval_holds_zero():
    groups = {
        "fp32": [204.0, 210.0, 216.0],
        "bf16": [200.0, 210.0, 220.0],
        "fast": [400.0, 410.0, 420.0],
        "slow": [10.0, 20.0, 30.0],
    }
    out = curl_parity.summarize(groups, reps=2000)
    assert out["groups"]["bf16"]["mean"] == pytest.approx(210.0)
    assert out["versus_fp32"]["bf16"]["difference"] == pytest.approx(0.0)
    assert out["versus_fp32"]["bf16"]["verdict"] == "within the fp32 spread"
    lo, hi = out["versus_fp32"]["fast"]["ci95"]
    assert out["versus_fp32"]["fast"]["verdict"] == "higher than fp32" and 180.0 <= lo <= 200.0 <= hi <= 220.0
    assert out["versus_fp32"]["slow"]["verdict"] == "lower than fp32"
    assert "fp32" not in out["versus_fp32"]


def test_command_reads_grid_scores_and_fp32_evaluations(tmp_path):
    scores = tmp_path / "scores.csv"
    scores.write_text(
        "cell,method,task,budget,seed,eval_env_step,score\n"
        "a,bf16,cartpole-swingup,100000,1,100000,200.0\n"
        "b,bf16,cartpole-swingup,100000,2,100000,240.0\n"
    )
    evals = []
    for seed, final in ((1, 190.0), (2, 230.0)):
        path = tmp_path / f"s{seed}_eval.csv"
        path.write_text(f"env_step,mean_return\n90000,5.0\n100000,{final}\n")
        evals.append(str(path))
    curl_parity.main(["--scores", str(scores), "--fp32", *evals, "--out", str(tmp_path / "r")])
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["groups"]["fp32"]["scores"] == [190.0, 230.0]  # the last row of each run
    assert result["versus_fp32"]["bf16"]["difference"] == pytest.approx(10.0)  # 220 - 210
    assert "| bf16 | 2 | 200.0, 240.0 | 220.0 |" in (tmp_path / "r.md").read_text()
