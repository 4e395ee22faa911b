"""Command lines built from config dataclasses, with one-line errors.

A trainer's settings live in one dataclass; :func:`add_dataclass_options` turns every field into a flag
(``env_steps`` -> ``--env-steps``) whose help text is the field's trailing comment in the class source
(or ``field(metadata={"help": ...})``), so a field added to a config is a flag with its help, and nothing
lists the options twice. Flags default to "not given" (``argparse.SUPPRESS``): :func:`explicit_values`
returns only what the user typed, so a command can layer defaults < saved config < preset < flags.

Field types understood: ``int``, ``float``, ``str``, ``bool`` (``--x/--no-x``), ``X | None`` (``None`` is
"use the preset / automatic"), ``tuple[int, ...]`` / ``tuple[float, ...]`` / ``list[str]`` (several values),
``dict`` (a JSON object) and ``Literal[...]`` (choices). ``field(metadata={"choices": names_or_callable})``
restricts a ``str`` field to a registry's names (a callable is read when the parser is built).

:func:`command` wraps a ``main(argv)``: :class:`~ssl_shared.errors.UserError` and argparse errors print ONE
line ``prog: error: ...`` on stderr and exit 2; :class:`~ssl_shared.errors.NonFiniteLossError` exits 3;
success returns ``None`` (exit 0). Other exceptions keep their traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import functools
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, NoReturn

from ssl_shared.errors import EXIT_NON_FINITE, EXIT_USER_ERROR, NonFiniteLossError, UserError

_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (``prog: error: message``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {one_line(message)}\n")
        raise SystemExit(EXIT_USER_ERROR)


def one_line(message: object) -> str:
    """Collapse a message onto one line (whitespace runs, newlines included, become one space)."""
    return " ".join(str(message).split())


def command(prog: str) -> Callable[[Callable[[Sequence[str] | None], Any]], Callable[[Sequence[str] | None], None]]:
    """Decorate ``main(argv)`` so user errors are one line + exit 2, and success exits 0 whatever main returns."""

    def decorate(main: Callable[[Sequence[str] | None], Any]) -> Callable[[Sequence[str] | None], None]:
        @functools.wraps(main)
        def wrapper(argv: Sequence[str] | None = None) -> None:
            try:
                main(argv)
            except UserError as err:
                _fail(prog, err, EXIT_USER_ERROR)
            except NonFiniteLossError as err:
                _fail(prog, err, EXIT_NON_FINITE)
            except OSError as err:
                if err.errno not in _ENVIRONMENT_ERRNOS:
                    raise
                where = f" {err.filename}" if err.filename else ""
                _fail(prog, f"cannot write or read{where}: {err.strerror}", EXIT_USER_ERROR)

        return wrapper

    return decorate


def _fail(prog: str, message: object, code: int) -> NoReturn:
    sys.stderr.write(f"{prog}: error: {one_line(message)}\n")
    raise SystemExit(code)


# ----------------------------------------------------------------------------------------- value parsers


def json_object(text: str) -> dict[str, Any]:
    """Parse a JSON object (``'{"latent_dim": 128}'``); anything else is an argparse error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg}): {text!r}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"key\": 1}}', got {text!r}")
    return value


def boolean(text: str) -> bool:
    """``true/false/yes/no/on/off/1/0`` (any case)."""
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# ----------------------------------------------------------------------------------------- dataclass options


@functools.cache
def field_help(cls: type) -> dict[str, str]:
    """Help text per field: ``metadata["help"]``, else the field's trailing ``# comment`` in the class source."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for match in re.finditer(r"^\s+(\w+)\s*:[^\n#]*#\s*(.+)$", source, flags=re.MULTILINE):
            comments[match.group(1)] = match.group(2).strip()
    for f in dataclasses.fields(cls):
        if "help" in f.metadata:
            comments[f.name] = f.metadata["help"]
    return comments


def flag_name(field_name: str) -> str:
    """``env_steps`` -> ``--env-steps``."""
    return "--" + field_name.replace("_", "-")


def add_dataclass_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: Iterable[str] = (),
    defaults: Any = None,
) -> list[str]:
    """Add one flag per field of dataclass ``cls`` (except ``exclude``); returns the field names added.

    ``defaults`` (an instance or dict) only feeds the help text ("default: ..."); parsed flags that were
    not given are absent from the namespace (see :func:`explicit_values`).
    """
    skip = set(exclude)
    helps = field_help(cls)
    hints = typing.get_type_hints(cls)
    default_values = _default_values(cls, defaults)
    added = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        kwargs = _argparse_kwargs(f, hints[f.name])
        text = helps.get(f.name, "")
        if f.name in default_values:
            shown = default_values[f.name]
            shown = "preset/auto" if shown is None else json.dumps(shown) if isinstance(shown, (dict, list)) else shown
            text = f"{text} (default: {shown})" if text else f"default: {shown}"
        parser.add_argument(
            flag_name(f.name), dest=f.name, default=argparse.SUPPRESS, help=text.replace("%", "%%"), **kwargs
        )
        added.append(f.name)
    return added


def explicit_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that the user gave on the command line (tuples restored from lists)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for name, value in vars(args).items():
        if name in names:
            values[name] = tuple(value) if isinstance(value, list) and _is_tuple(cls, name) else value
    return values


def _is_tuple(cls: type, name: str) -> bool:
    hint = _strip_optional(typing.get_type_hints(cls)[name])
    return typing.get_origin(hint) is tuple


def _default_values(cls: type, defaults: Any) -> dict[str, Any]:
    if defaults is None:
        out = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out
    if dataclasses.is_dataclass(defaults):
        return {f.name: getattr(defaults, f.name) for f in dataclasses.fields(defaults)}
    return dict(defaults)


def _strip_optional(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _argparse_kwargs(f: dataclasses.Field, hint: Any) -> dict[str, Any]:
    base = _strip_optional(hint)
    origin = typing.get_origin(base)
    choices = f.metadata.get("choices")
    if callable(choices):
        choices = choices()
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        return {"choices": list(typing.get_args(base)), "type": type(typing.get_args(base)[0])}
    if base is dict or origin is dict:
        return {"type": json_object, "metavar": "JSON"}
    if origin in (tuple, list):
        item = typing.get_args(base)[0]
        return {"type": item, "nargs": "+", "metavar": item.__name__.upper()}
    if base in (int, float, str):
        kwargs: dict[str, Any] = {"type": base, "metavar": base.__name__.upper()}
        if choices is not None:
            kwargs["choices"] = list(choices)
            kwargs.pop("metavar")
        return kwargs
    raise TypeError(f"field {f.name!r}: type {hint!r} has no command-line form")


# ----------------------------------------------------------------------------------------- validation helpers


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise :class:`UserError` unless ``value`` is an int >= 1 (>= 0 with ``allow_zero``); ``name`` is the field."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{flag_name(name)}: got {value!r}; allowed: an integer >= {low}")


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> None:
    """Raise :class:`UserError` unless ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise UserError(f"{flag_name(name)}: unknown value {value!r}; allowed: {', '.join(map(str, allowed))}")
