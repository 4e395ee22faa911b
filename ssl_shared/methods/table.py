"""The table of every SSL method as markdown, read from the registry.

    python -m ssl_shared.methods.table --out docs/ssl_methods.md

One row per entry of :data:`~ssl_shared.methods.registry.METHODS`, in registry order: the name, the
class attributes ``family`` and ``citation``, the batch keys (``required_inputs`` in the order of
:data:`~ssl_shared.methods.base.BATCH_KEYS`, plus ``input_note``) and the module that defines the class.
A test checks that the committed ``docs/ssl_methods.md`` equals this output.
"""

from __future__ import annotations

from ssl_shared.markdown import generated_doc_main, markdown_table
from ssl_shared.methods.base import BATCH_KEYS, SSLMethod
from ssl_shared.methods.registry import METHODS

COMMAND = "python -m ssl_shared.methods.table --out docs/ssl_methods.md"
HEADER = ("name", "family", "citation", "batch keys", "module")


def batch_keys(cls: type[SSLMethod]) -> str:
    """``required_inputs`` in :data:`BATCH_KEYS` order, then the ``input_note`` in parentheses."""
    unknown = sorted(set(cls.required_inputs) - set(BATCH_KEYS))
    if unknown:
        raise ValueError(f"method {cls.name!r} reads batch keys {unknown} that are not in BATCH_KEYS {BATCH_KEYS}")
    keys = ", ".join(key for key in BATCH_KEYS if key in cls.required_inputs)
    return f"{keys} ({cls.input_note})" if cls.input_note else keys


def module_file(cls: type) -> str:
    """The file of the module that defines ``cls``, relative to its package (``simclr.py``)."""
    return cls.__module__.rsplit(".", 1)[-1] + ".py"


def row(name: str, cls: type[SSLMethod]) -> list[str]:
    return [f"`{name}`", cls.family, cls.citation, batch_keys(cls), f"`{module_file(cls)}`"]


def render() -> str:
    """The whole markdown document."""
    lines = [
        "# SSL methods",
        "",
        f"Generated from `ssl_shared.methods.METHODS` by `{COMMAND}`; do not edit by hand "
        "(`tests/test_methods_training.py` checks that this file equals the regenerated output). "
        "Family, citation and batch keys are attributes of each method class (`family`, `citation`, "
        "`required_inputs`, `input_note`); modules are under `ssl_shared/methods/`. Batch keys: `image` "
        "`(B, C, H, W)`, `index` `(B,)` dataset indices, `label` `(B,)` with `-1` for unlabelled rows, "
        "`frames` `(B, T, C, H, W)`.",
        "",
    ]
    lines += markdown_table(list(HEADER), [row(name, cls) for name, cls in METHODS.items()])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    generated_doc_main("python -m ssl_shared.methods.table", __doc__.split("\n")[0], render, argv)


if __name__ == "__main__":
    main()
