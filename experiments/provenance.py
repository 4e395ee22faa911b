"""Provenance for committed results; the functions live in :mod:`ssl_shared.provenance` (one source of truth)."""

from ssl_shared.provenance import REPO, git_commit, hardware, hardware_line, package_versions, run_provenance

__all__ = ["REPO", "git_commit", "hardware", "hardware_line", "package_versions", "run_provenance"]
