"""The run folder survives SIGKILL at any instant: versioned checkpoints, atomic files, CSV logs."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ssl_shared.errors import UserError
from ssl_shared.run_dir import (
    CheckpointStore,
    CsvLog,
    atomic_write_text,
    check_resume_config,
    prepare_run_dir,
    read_csv,
)

WRITER = textwrap.dedent(
    """
    import hashlib, os, sys
    from ssl_shared.run_dir import CheckpointStore
    store = CheckpointStore(sys.argv[1])
    step = 0
    while True:
        step += 1
        with store.save(step) as folder:
            payload = os.urandom(3_000_000)
            (folder / "weights.bin").write_bytes(payload)
            (folder / "step.txt").write_text(str(step))
            (folder / "sha256.txt").write_text(hashlib.sha256(payload).hexdigest())
        print(step, flush=True)
    """
)


def _complete(folder: Path) -> bool:
    payload = (folder / "weights.bin").read_bytes()
    return hashlib.sha256(payload).hexdigest() == (folder / "sha256.txt").read_text()


def test_sigkill_during_repeated_saves_always_leaves_one_complete_checkpoint(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    delays = [0.05 * k for k in range(1, 13)]
    for trial, delay in enumerate(delays):
        root = tmp_path / f"trial{trial}"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], env=env, stdout=subprocess.PIPE)
        first = proc.stdout.readline()  # one save finished: from now on a checkpoint must always exist
        assert first.strip() == b"1"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = CheckpointStore(root)
        latest = store.latest()
        assert latest is not None and _complete(latest), f"trial {trial}: no complete checkpoint"
        latest_step = int((latest / "step.txt").read_text())
        store.clean_leftovers()
        after = store.latest()
        assert after is not None and _complete(after)
        assert int((after / "step.txt").read_text()) >= latest_step
        leftovers = [p.name for p in root.iterdir() if p.name != CheckpointStore.POINTER and p != after]
        assert leftovers == [], leftovers


def test_failed_save_keeps_previous_checkpoint_and_removes_temporary(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt")
    with store.save(10) as folder:
        (folder / "a.txt").write_text("ten")
    with pytest.raises(RuntimeError), store.save(20) as folder:
        (folder / "a.txt").write_text("twenty")
        raise RuntimeError("disk full")
    assert (store.latest() / "a.txt").read_text() == "ten"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["latest.txt", "step-0000000010"]


def test_keep_prunes_oldest_versions_and_same_step_twice_gets_new_name(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    for step in (1, 2, 3, 3):
        with store.save(step) as folder:
            (folder / "s").write_text(str(step))
    names = [p.name for p in store.versions()]
    assert names == ["step-0000000003", "step-0000000003.1"]
    assert store.latest().name == "step-0000000003.1"


def test_csv_log_rows_reach_disk_and_resume_truncates_without_duplicates(tmp_path):
    log = CsvLog(tmp_path / "train.csv", step_key="step")
    for step in range(0, 50, 10):
        log.append({"step": step, "loss": step / 10})
    with (tmp_path / "train.csv").open("a") as f:  # a write torn by SIGKILL
        f.write("50,0.")
    log.truncate_after(20)
    for step in (30, 40):
        log.append({"step": step, "loss": -1})
    rows = read_csv(tmp_path / "train.csv", unique_key="step")
    assert [int(r["step"]) for r in rows] == [0, 10, 20, 30, 40]
    assert [float(r["loss"]) for r in rows] == [0.0, 1.0, 2.0, -1.0, -1.0]
    with pytest.raises(ValueError, match="columns"):
        log.append({"step": 50, "new_column": 1})


def test_read_csv_refuses_two_rows_for_one_step(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text("env_step,mean_return\n0,1\n100000,500\n100000,700\n")
    with pytest.raises(ValueError, match="two rows for env_step=100000"):
        read_csv(path, unique_key="env_step")


def test_prepare_run_dir_refuses_overwrite_and_empty_resume(tmp_path):
    out = tmp_path / "run"
    store = CheckpointStore(out / "checkpoints")
    with pytest.raises(UserError, match="no checkpoint"):
        prepare_run_dir(out, resume=True, store=store)
    prepare_run_dir(out, resume=False, store=store, run_markers=["config.json"])
    atomic_write_text(out / "config.json", "{}")
    with pytest.raises(UserError, match="already holds a run"):
        prepare_run_dir(out, resume=False, store=store, run_markers=["config.json"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        prepare_run_dir(tmp_path / "file", resume=False, store=CheckpointStore(tmp_path / "c"))


def test_check_resume_config_names_every_conflicting_field():
    saved = {"lr": 1e-3, "batch_size": 32, "steps": 100, "seed": 1}
    check_resume_config(saved, dict(saved, steps=200), ignore={"steps"})
    with pytest.raises(UserError) as err:
        check_resume_config(saved, dict(saved, lr=2e-4, seed=2))
    message = str(err.value)
    assert "lr: saved 0.001, now 0.0002" in message and "seed: saved 1, now 2" in message
    assert "batch_size" not in message and "\n" not in message


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077], ids=["umask022", "umask002", "umask077"])
def test_atomic_files_and_checkpoint_folders_get_the_modes_open_and_mkdir_give(tmp_path, umask):
    """Files ``0o666`` and folders ``0o777`` less the umask, as a plain ``open`` / ``mkdir`` would make them
    (a temporary file of ``tempfile.mkstemp`` is ``0o600`` and would stay so after its rename)."""
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "config.json", "{}")
        store = CheckpointStore(tmp_path / "checkpoints")
        with store.save(5) as folder:
            (folder / "state.pt").write_bytes(b"x")
        plain = tmp_path / "plain"
        plain.mkdir()
        (plain / "file").write_text("")
    finally:
        os.umask(previous)
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "checkpoints" / "latest.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    assert store.latest().stat().st_mode & 0o777 == 0o777 & ~umask
    assert store.latest().stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == (plain / "file").stat().st_mode & 0o777
