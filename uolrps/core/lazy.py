"""Package attributes resolved from their modules on first use, so importing a package stays light."""

from __future__ import annotations

import importlib
import sys


def lazy_attributes(package: str, table: dict[str, str]):
    """``__getattr__`` and ``__dir__`` for ``package``, taking each name in ``table`` from its module."""

    def __getattr__(name: str):
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            setattr(sys.modules[package], name, value)  # resolved once
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__


def importable(name: str) -> bool:
    """True when the top-level package ``name`` can be imported, without importing it (a name set to None in
    ``sys.modules``, as tests do to hide a package, counts as missing)."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
