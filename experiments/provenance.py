"""Provenance for committed results: the git commit and the package versions the numbers came from."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git_commit(repo: Path = REPO, paths: Sequence[str] = ()) -> str:
    """HEAD, marked ``" + uncommitted changes"`` when the working tree differs from it.

    ``paths`` (git pathspecs, e.g. ``("curl_agents", "experiments/*.py")``) limits that check to the
    code the numbers depend on, so that result files a job writes itself do not mark it; empty means
    the whole tree. ``"uncommitted"`` outside git.
    """
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", *paths],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "uncommitted"
    return f"{head} + uncommitted changes" if dirty else head


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Python's version and each distribution's in ``names`` (``"not installed"`` when absent)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), **{name: installed(name) for name in names}}
