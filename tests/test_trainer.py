"""The generic SSL trainer: schedules, early errors, resume equivalence, multi-process gradient averaging."""

import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from ssl_shared.train import TrainerConfig, lr_at, train, train_method

TINY = dict(data="digits", image_size=16, widths=(8, 16), feature_dim=16, batch_size=16, log_every=5, probe=False)


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainerConfig(lr=1.0, steps=110, warmup_steps=10)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(110, cfg) == pytest.approx(0.0)


def test_bad_inputs_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="unknown method"):
        train(TrainerConfig(method="no-such-method", out=str(tmp_path), **TINY))
    with pytest.raises(FileNotFoundError):
        train(TrainerConfig(method="rotation", **{**TINY, "data": f"folder:{tmp_path / 'missing'}"}, out=str(tmp_path)))
    with pytest.raises(ValueError, match="frames"):
        train(TrainerConfig(method="shuffle_and_learn", out=str(tmp_path), **TINY))
    assert not (tmp_path / "checkpoint.pt").exists()


def _final_weights(out) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=False)["method"]


def test_resume_continues_exactly(tmp_path):
    full = tmp_path / "full"
    train(TrainerConfig(method="simclr", steps=6, checkpoint_every=100, out=str(full), **TINY))
    half = tmp_path / "half"
    # an interrupted run: it stops after 3 of its 6 steps, then --resume finishes it
    train(TrainerConfig(method="simclr", steps=6, stop_after=3, checkpoint_every=100, out=str(half), **TINY))
    state = torch.load(half / "checkpoint.pt", weights_only=False)
    assert state["step"] == 3
    train(TrainerConfig(method="simclr", steps=6, checkpoint_every=100, out=str(half), resume=True, **TINY))
    a, b = _final_weights(full), _final_weights(half)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=f"parameter {k} differs after resume")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    cfg = TrainerConfig(method="rotation", steps=3, checkpoint_every=100, out=f"{out}/run", **TINY)
    method, _ = train_method(cfg)
    torch.save(method.state_dict(), f"{out}/weights_rank{rank}.pt")
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def test_two_process_training_keeps_replicas_identical(tmp_path):
    """Same initial weights and averaged gradients: after several steps on different data shards and
    different augmentations, both replicas hold identical weights (that changed from the start)."""
    port = _free_port()
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    w0 = torch.load(tmp_path / "weights_rank0.pt")
    w1 = torch.load(tmp_path / "weights_rank1.pt")
    single, _ = train_method(TrainerConfig(method="rotation", steps=0, out=str(tmp_path / "init"), **TINY))
    moved = False
    for k in w0:
        if "running_" in k or "num_batches_tracked" in k:
            continue  # BatchNorm statistics are per-process on CPU (SyncBatchNorm is CUDA-only)
        torch.testing.assert_close(w0[k], w1[k], msg=f"replicas differ at {k}")
        moved |= torch.is_floating_point(w0[k]) and not torch.allclose(w0[k], single.state_dict()[k])
    assert moved, "training changed no weight"
