"""A training run SIGKILLed at many points (training, checkpoint writes, log writes) and resumed each time
ends exactly where an uninterrupted run ends: same weights, same ``eval.csv``, no duplicated TensorBoard
points, no leftovers of the killed writes.

Each launch is a forked child of one prepared Python process (``test_train_cli.run_forked``); a hook
installed in the child sends SIGKILL to itself when a chosen call happens for the n-th time, so the
points are exact and the test does not depend on timing.
"""

from __future__ import annotations

import json
import signal
import textwrap

from test_train_cli import FAKE_ENV_PREAMBLE, TINY, assert_same_weights, eval_rows, run_forked, without_wall_time

KILL_HOOKS = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    def in_save(*args, **kwargs):  # called from CheckpointStore.save (not from the start's clean-up)
        return sys._getframe(2).f_code.co_name == "save"

    def kill_at_call(owner, name, nth, when=lambda *args, **kwargs: True, after=False, torn=False):
        original, calls = getattr(owner, name), [0]

        def wrapper(*args, **kwargs):
            if when(*args, **kwargs):
                calls[0] += 1
                if calls[0] == nth and torn:  # a row cut short by the kill
                    self, row = args[0], args[1]
                    with self.path.open("a") as f:
                        f.write(",".join(map(str, row.values()))[:7])
                if calls[0] == nth and not after:
                    os.kill(os.getpid(), signal.SIGKILL)
            result = original(*args, **kwargs)
            if calls[0] == nth and after:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(owner, name, wrapper)
    """
)

# (where, hook installed in the child). Counts start at each launch; the comment says what the launch
# has done when it is killed (TINY: 10 agent steps = 80 env steps per episode, updates from agent step 6).
KILLS = [
    (
        "during training, before the first periodic checkpoint",  # last checkpoint: env step 0
        "from curl_agents.algorithms.pixel_sac import PixelSAC; kill_at_call(PixelSAC, 'train', 3)",
    ),
    (
        "checkpoint files written, folder not renamed yet",  # step 80's temporary folder left behind
        "import ssl_shared.run_dir as r; kill_at_call(r, '_fsync_tree', 1)",
    ),
    (
        "checkpoint folder renamed, pointer not moved yet",  # step-80 complete, latest.txt names step 0
        "import ssl_shared.run_dir as r; kill_at_call(r, 'atomic_write_text', 1, in_save)",
    ),
    (
        "pointer moved, older checkpoint not deleted yet",
        "from ssl_shared.run_dir import CheckpointStore as S; kill_at_call(S, '_prune', 1, in_save)",
    ),
    (
        "in the middle of an eval.csv row",
        "from ssl_shared.run_dir import CsvLog; kill_at_call(CsvLog, 'append', 1, torn=True)",
    ),
    (
        "eval row and TensorBoard point written, checkpoint not started",
        "from ssl_shared.run_dir import CheckpointStore as S; kill_at_call(S, 'save', 1)",
    ),
    (
        "while the replay buffer is written into the checkpoint",
        "from curl_agents.algorithms.pixel_sac import PixelSAC; kill_at_call(PixelSAC, 'save_replay_buffer', 1)",
    ),
    (
        "while launches.json is replaced",  # its temporary file left behind
        "kill_at_call(os, 'replace', 1, lambda *a, **k: Path(a[1]).name == 'launches.json')",
    ),
    (
        "during training, after some updates",
        "from curl_agents.algorithms.pixel_sac import PixelSAC; kill_at_call(PixelSAC, 'train', 10)",
    ),
]


def test_runs_killed_anywhere_resume_to_the_uninterrupted_result(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    full, killed = tmp_path / "full", tmp_path / "killed"
    budget = ["--env-steps", "320"]
    jobs = [{"argv": [*TINY, *budget, "--out", str(full)]}]
    for i, (_, hook) in enumerate(KILLS):
        argv = [*TINY, *budget] if i == 0 else ["--resume", "--no-progress"]
        jobs.append({"argv": [*argv, "--out", str(killed)], "hook": KILL_HOOKS + hook, "list": str(killed)})
    jobs.append({"argv": ["--resume", "--no-progress", "--out", str(killed)], "list": str(killed)})
    reports = run_forked(jobs, FAKE_ENV_PREAMBLE, tmp_path)

    assert reports[0]["code"] == 0, reports[0]["stderr"]
    for (where, _), report in zip(KILLS, reports[1:]):
        assert report["code"] == -signal.SIGKILL, (where, report["stderr"])
    listings = dict(zip([where for where, _ in KILLS], (r["listing"] for r in reports[1:])))
    assert any(p.startswith("checkpoints/.tmp-") for p in listings["checkpoint files written, folder not renamed yet"])
    assert any(p.startswith(".launches.json.") for p in listings["while launches.json is replaced"])
    for where in (
        "checkpoint folder renamed, pointer not moved yet",
        "pointer moved, older checkpoint not deleted yet",
    ):
        assert len([p for p in listings[where] if p.count("/") == 1 and "/step-" in p]) == 2, where
    assert reports[-1]["code"] == 0, reports[-1]["stderr"]

    assert_same_weights(full / "final_model.zip", killed / "final_model.zip")
    assert without_wall_time(eval_rows(killed)) == without_wall_time(eval_rows(full))
    assert [int(r["env_step"]) for r in eval_rows(killed)] == [0, 80, 160, 240, 320]
    leftovers = [p for p in reports[-1]["listing"] if any(part.startswith(".") for part in p.split("/"))]
    assert leftovers == []
    assert sorted(p for p in reports[-1]["listing"] if p.startswith("checkpoints/")) == [
        "checkpoints/latest.txt",
        "checkpoints/step-0000000320",
        *(f"checkpoints/step-0000000320/{f}" for f in ("manifest.json", "model.zip", "replay.pkl", "state.pt")),
    ]
    events = EventAccumulator(str(killed / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("eval/mean_return")] == [0, 80, 160, 240, 320]  # killed runs' points purged
    launches = json.loads((killed / "launches.json").read_text())
    assert len(launches) == len(KILLS)  # one record per launch, but the one killed while writing it
    assert launches[0]["resume"] is False and all(x["resume"] for x in launches[1:])
