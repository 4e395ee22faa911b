"""A run folder that survives being killed at any instant: atomic files, versioned checkpoints, CSV logs.

Every trainer of the suite writes its run folder through this module:

* :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_json` /
  :func:`atomic_torch_save`: write a temporary sibling, flush it to disk, then ``os.replace`` it over the
  target, so a reader sees the old file or the new one, never half of one. Temporary files and checkpoint
  folders are created with the ordinary modes (``0o666`` / ``0o777`` less the umask), as ``open`` and
  ``mkdir`` would, so run folders stay readable to whoever may read the folder they are in.
* :class:`CheckpointStore`: ``checkpoints/step-0000012500/`` folders plus a pointer file
  ``checkpoints/latest.txt`` naming the newest complete one. A save writes a temporary folder, renames it
  to its versioned name, then replaces the pointer, then deletes older versions: at every instant the
  pointer names a complete checkpoint. :meth:`CheckpointStore.clean_leftovers` removes what a killed save
  left behind (temporary folders, versions the pointer does not name), never the checkpoint it names.
* :class:`CsvLog`: append-only CSV whose rows reach the file at once (a killed run keeps every row it
  logged). On resume, :meth:`CsvLog.truncate_after` drops the rows past the checkpoint's step (and a
  torn last line), so the resumed run's rows continue without gaps or duplicates.
  :func:`read_csv` refuses a file with two rows for one step.
* :func:`prepare_run_dir` refuses to start a new run over an existing one and to resume an empty folder;
  :func:`check_resume_config` refuses to resume with a conflicting configuration, naming the fields.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ssl_shared.errors import UserError

T = TypeVar("T")

# ----------------------------------------------------------------------------------------- atomic files


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on this platform (e.g. Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _new_sibling(parent: Path, prefix: str, suffix: str, create: Callable[[Path], T]) -> tuple[Path, T]:
    """``create(parent / (prefix + random + suffix))`` for a name that does not exist yet (``create`` must
    raise ``FileExistsError`` for an existing one, as ``os.open(O_EXCL)`` and ``os.mkdir`` do)."""
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(6)}{suffix}"
        try:
            return candidate, create(candidate)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name {prefix}*{suffix} in {parent}")


def _create_file(path: Path) -> int:
    """A new file opened for writing with mode ``0o666`` less the umask (``tempfile.mkstemp`` gives ``0o600``)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)


def _create_folder(path: Path) -> None:
    """A new folder with mode ``0o777`` less the umask (``tempfile.mkdtemp`` gives ``0o700``)."""
    os.mkdir(path, 0o777)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> None:
    """Replace ``path`` atomically with what ``write(file)`` streams into a temporary sibling (fsync, then
    ``os.replace``): a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _new_sibling(path.parent, f".{path.name}.", ".tmp", _create_file)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` streamed into :func:`atomic_write` (no second copy of a large object in memory)."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


# ----------------------------------------------------------------------------------------- checkpoints


class CheckpointStore:
    """Versioned checkpoint folders under ``root`` with an atomically replaced pointer to the newest.

    ``with store.save(step) as folder:`` yields an empty temporary folder; write the checkpoint's files
    into it. When the block ends without an exception the folder becomes ``root/step-<step>`` and the
    pointer ``root/latest.txt`` names it; older versions beyond ``keep`` are deleted afterwards. If the
    block raises, the temporary folder is removed and the previous checkpoint stays the latest.
    """

    POINTER = "latest.txt"
    PREFIX = "step-"
    TMP_PREFIX = ".tmp-"

    def __init__(self, root: str | Path, keep: int = 1) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.root = Path(root)
        self.keep = keep

    def latest(self) -> Path | None:
        """The checkpoint folder the pointer names; without a valid pointer the newest complete version (or None)."""
        pointer = self.root / self.POINTER
        if pointer.is_file():
            folder = self.root / pointer.read_text().strip()
            if folder.name.startswith(self.PREFIX) and folder.is_dir():
                return folder
        versions = self.versions()
        return versions[-1] if versions else None

    def versions(self) -> list[Path]:
        """Complete (renamed) checkpoint folders, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.startswith(self.PREFIX))

    @contextmanager
    def save(self, step: int) -> Iterator[Path]:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp, _ = _new_sibling(self.root, self.TMP_PREFIX, "", _create_folder)
        try:
            yield tmp
            _fsync_tree(tmp)
            final = self._free_name(step)
            os.rename(tmp, final)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write_text(self.root / self.POINTER, final.name + "\n")
        self._prune(final)

    def _free_name(self, step: int) -> Path:
        base = f"{self.PREFIX}{step:010d}"
        candidate, k = self.root / base, 1
        while candidate.exists():
            candidate, k = self.root / f"{base}.{k}", k + 1
        return candidate

    def _prune(self, newest: Path) -> None:
        older = [p for p in self.versions() if p != newest]
        for folder in older[: max(0, len(older) - (self.keep - 1))]:
            shutil.rmtree(folder, ignore_errors=True)

    def clean_leftovers(self) -> list[Path]:
        """Finish what a killed save left: remove temporary folders and files, point at the newest complete
        version (a save killed after its rename is complete), prune older versions. Returns what was removed."""
        if not self.root.is_dir():
            return []
        removed = []
        for p in self.root.iterdir():
            if p.name.startswith(self.TMP_PREFIX) or (p.name.startswith(".") and p.name.endswith(".tmp")):
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
        versions = self.versions()
        if versions:
            newest = versions[-1]
            if self.latest() != newest or not (self.root / self.POINTER).is_file():
                atomic_write_text(self.root / self.POINTER, newest.name + "\n")
            before = set(self.versions())
            self._prune(newest)
            removed += sorted(before - set(self.versions()))
        return removed


# ----------------------------------------------------------------------------------------- CSV logs


class CsvLog:
    """Append-only CSV log; every ``append`` reaches the file before it returns.

    The columns are fixed by the first row (or the existing header); later rows may omit columns (left
    empty) but not add new ones. ``step_key`` names the column that orders rows (e.g. ``env_step``).
    """

    def __init__(self, path: str | Path, step_key: str = "step") -> None:
        self.path = Path(path)
        self.step_key = step_key

    def fieldnames(self) -> list[str] | None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with self.path.open(newline="") as f:
            header = next(csv.reader(f), None)
        return header

    def append(self, row: Mapping[str, Any]) -> None:
        header = self.fieldnames()
        new = header is None
        fields = list(row) if header is None else header
        unknown = [k for k in row if k not in fields]
        if unknown:
            raise ValueError(f"{self.path}: columns {unknown} are not in the header {fields}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            if new:
                writer.writeheader()
            writer.writerow(dict(row))
            f.flush()

    def rows(self) -> list[dict[str, str]]:
        return read_csv(self.path, unique_key=None) if self.path.exists() else []

    def truncate_after(self, step: float) -> None:
        """Keep only rows whose ``step_key`` is <= ``step`` (and drop a torn last line); atomic rewrite."""
        if not self.path.exists():
            return
        fields = self.fieldnames()
        if fields is None:
            return
        kept = [r for r in _complete_rows(self.path, fields) if float(r[self.step_key]) <= step]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, out.getvalue())


def _complete_rows(path: Path, fields: list[str]) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return [r for r in reader if None not in r and all(r.get(k) is not None for k in fields)]


def read_csv(path: str | Path, unique_key: str | None = "step") -> list[dict[str, str]]:
    """Rows of a CSV log; with ``unique_key``, two rows with the same value there raise ``ValueError``."""
    path = Path(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if unique_key is not None:
        seen: dict[str, int] = {}
        for i, row in enumerate(rows):
            key = str(row.get(unique_key))
            if key in seen:
                raise ValueError(
                    f"{path}: two rows for {unique_key}={key} (lines {seen[key] + 2} and {i + 2}); "
                    "a run was evaluated twice at one step, so its score is ambiguous"
                )
            seen[key] = i
    return rows


# ----------------------------------------------------------------------------------------- run folder checks


def prepare_run_dir(out: str | Path, resume: bool, store: CheckpointStore, run_markers: Iterable[str] = ()) -> Path:
    """Check ``out`` before any work: a new run must not overwrite one, a resume needs a checkpoint.

    ``run_markers`` are file names whose presence means ``out`` already holds a run (besides a checkpoint).
    Creates ``out`` for a new run and removes leftovers of killed checkpoint writes. Returns ``out``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose a folder")
    if resume:
        if store.latest() is None:
            raise UserError(f"--resume: no checkpoint in {out}; start a new run without --resume")
    else:
        existing = [m for m in run_markers if (out / m).exists()]
        if store.latest() is not None or existing:
            held = existing[0] if existing else store.root.name
            raise UserError(
                f"--out {out} already holds a run ({held}); pass --resume to continue it or choose another --out"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UserError(f"--out {out} is not writable ({err.strerror})") from err
    store.clean_leftovers()
    return out


def config_conflicts(saved: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = ()) -> dict:
    """``{field: (saved, current)}`` for every field whose value differs (JSON-normalised)."""
    skip = set(ignore)

    def norm(value: Any) -> Any:
        return json.loads(json.dumps(value, default=str))

    return {
        k: (saved.get(k), v) for k, v in current.items() if k not in skip and k in saved and norm(saved[k]) != norm(v)
    }


def check_resume_config(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: Iterable[str] = (), source: str = "config.json"
) -> None:
    """Raise :class:`UserError` naming every field where ``current`` differs from the ``saved`` run config."""
    diff = config_conflicts(saved, current, ignore)
    if diff:
        listed = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, a, b in ((k, *v) for k, v in sorted(diff.items())))
        raise UserError(
            f"--resume with settings that differ from {source}: {listed}. Resume with the saved settings "
            "or start a new run in another --out"
        )
