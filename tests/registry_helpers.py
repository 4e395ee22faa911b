"""Support for the registry tests: every class a package defines, found independently of its registry."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def defined_subclasses(base: type, package: ModuleType) -> set[type]:
    """Every subclass of ``base`` (at any depth) defined in a module of ``package``; imports each module
    first, so a class its registry forgot is still found."""
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    found, todo = set(), [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith(package.__name__ + "."):
                found.add(sub)
    return found
