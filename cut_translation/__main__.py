"""``python -m cut_translation train|translate|evaluate ...`` (same as the ``scv-cut-*`` commands)."""

from cut_translation.cli import main

main()
