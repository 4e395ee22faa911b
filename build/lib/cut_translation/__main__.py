"""``python -m cut_translation train|translate|evaluate ...`` (same as the ``cut-*`` commands)."""

from cut_translation.cli import main

main()
