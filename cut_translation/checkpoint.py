"""Checkpoints of ``scv-cut-train`` runs: layout, writing, finding and reading them.

Layout (written through :class:`ssl_shared.run_dir.CheckpointStore`, so a complete checkpoint exists at
every instant, also when the process is killed during a save)::

    RUN/checkpoints/latest.txt                  names the newest complete checkpoint folder
    RUN/checkpoints/step-0000000500/meta.json   model name, model and run configs, iteration, FID history
    RUN/checkpoints/step-0000000500/state.pt    weights ("model_state") and optimiser/pool state ("extra")

Runs of earlier versions kept everything in one file, ``RUN/checkpoints/latest.pt``; ``scv-cut-translate`` and
``scv-cut-evaluate`` still read it. Files are read with ``torch.load(weights_only=True)`` (tensors and plain
containers only, no code is run), and every problem with a checkpoint given by the user (missing,
truncated, not a checkpoint, weights that do not fit the model) is a one-line
:class:`~ssl_shared.errors.UserError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cut_translation.models import MODEL_NAMES, build_model, make_config
from ssl_shared.errors import UserError
from ssl_shared.run_dir import CheckpointStore

STATE_FILE = "state.pt"
META_FILE = "meta.json"
LEGACY_FILE = "latest.pt"
FORMAT_VERSION = 2
_META_KEYS = ("model", "model_config", "train_config", "iteration")


def checkpoint_store(run: str | Path) -> CheckpointStore:
    """The checkpoint store of run folder ``run`` (one version kept)."""
    return CheckpointStore(Path(run) / "checkpoints")


def write_checkpoint(store: CheckpointStore, iteration: int, meta: dict[str, Any], state: dict[str, Any]) -> Path:
    """Save ``meta`` (JSON) and ``state`` (tensors) as the checkpoint of ``iteration``; returns its folder."""
    with store.save(iteration) as folder:
        torch.save(state, folder / STATE_FILE)
        (folder / META_FILE).write_text(json.dumps({"format": FORMAT_VERSION, **meta}, indent=2) + "\n")
    latest = store.latest()
    assert latest is not None
    return latest


def _where(flag: str, path: Path) -> str:
    return f"{flag} {path}" if flag else str(path)


def locate_checkpoint(path: str | Path, flag: str = "--checkpoint") -> Path:
    """A checkpoint folder (with ``meta.json``) or an earlier version's single ``.pt`` file.

    ``path`` may be a run folder, its ``checkpoints/`` folder, a ``step-*`` folder, a file inside one, or
    a ``.pt`` file. ``UserError`` naming ``flag`` when nothing is found.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{_where(flag, path)}: not found; give a run folder, its checkpoints/ folder or a checkpoint")
    if path.is_file():
        return path.parent if path.name in (STATE_FILE, META_FILE) else path
    if (path / META_FILE).is_file():
        return path
    for root in (path / "checkpoints", path):
        latest = CheckpointStore(root).latest()
        if latest is not None:
            return latest
        if (root / LEGACY_FILE).is_file():
            return root / LEGACY_FILE
    raise UserError(
        f"{_where(flag, path)}: no checkpoint inside (expected checkpoints/latest.txt with step-* folders, "
        f"or checkpoints/{LEGACY_FILE})"
    )


def torch_load(path: Path, flag: str = "--checkpoint") -> Any:
    """``torch.load(weights_only=True)`` on CPU; ``UserError`` naming the file if it cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise UserError(f"{_where(flag, path)}: file not found") from err
    except Exception as err:  # unpickling arbitrary bytes can raise almost any exception type
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{_where(flag, path)}: not a readable PyTorch file (truncated, or of another format): {reason}"
        ) from err


def read_meta(folder: Path, flag: str = "--checkpoint") -> dict[str, Any]:
    """The ``meta.json`` of checkpoint folder ``folder``, checked for the keys a checkpoint needs."""
    path = folder / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise UserError(f"{_where(flag, folder)}: {META_FILE} is missing; not a scv-cut-train checkpoint") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{_where(flag, path)}: not valid JSON ({err}); the checkpoint is damaged") from err
    _check_meta(meta, path, flag)
    return meta


def _check_meta(meta: Any, path: Path, flag: str) -> None:
    missing = [k for k in _META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise UserError(f"{_where(flag, path)}: not a scv-cut-train checkpoint (lacks {', '.join(missing)})")
    if meta["model"] not in MODEL_NAMES:
        raise UserError(
            f"{_where(flag, path)}: unknown model {meta['model']!r}; this version knows {', '.join(MODEL_NAMES)}"
        )


def read_checkpoint(path: str | Path, flag: str = "--checkpoint") -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, state)`` of the checkpoint found at ``path`` (see :func:`locate_checkpoint`)."""
    found = locate_checkpoint(path, flag)
    if found.is_dir():
        meta = read_meta(found, flag)
        state = torch_load(found / STATE_FILE, flag)
        where = found / STATE_FILE
    else:  # an earlier version's single file
        legacy = torch_load(found, flag)
        if not isinstance(legacy, dict) or "model_name" not in legacy or "model_state" not in legacy:
            raise UserError(f"{_where(flag, found)}: not a scv-cut-train checkpoint (a torch file of something else)")
        meta = {
            "model": legacy["model_name"],
            "model_config": legacy.get("model_config", {}),
            "train_config": legacy.get("train_config", {}),
            "iteration": legacy.get("iteration", 0),
            "fid_history": legacy.get("fid_history", []),
        }
        _check_meta(meta, found, flag)
        state = legacy
        where = found
    if not isinstance(state, dict) or not isinstance(state.get("model_state"), dict):
        raise UserError(f"{_where(flag, where)}: holds no model weights; not a scv-cut-train checkpoint")
    return meta, state


def model_from_meta(meta: dict[str, Any], flag: str = "--checkpoint", where: str | Path = "") -> torch.nn.Module:
    """The model named by a checkpoint's meta data, built from its saved config (initial weights)."""
    try:
        return build_model(meta["model"], make_config(meta["model"], **meta["model_config"]))
    except (TypeError, ValueError) as err:
        raise UserError(f"{_where(flag, Path(where))}: its model config does not fit this version: {err}") from err


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", flag: str = "--checkpoint"
) -> tuple[dict[str, Any], torch.nn.Module]:
    """``(meta, model with the checkpoint's weights on device)`` for translation and evaluation."""
    meta, state = read_checkpoint(path, flag)
    model = model_from_meta(meta, flag, path)
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"{_where(flag, Path(path))}: weights do not fit a {meta['model']} model: {first}") from err
    return meta, model.to(device)
