"""Checks of option values shared by the Python API: each raises UserError naming the parameter as the
caller words it (a CLI passes its flag, the library its argument name)."""

from __future__ import annotations

from uolrps.errors import UserError


def check_fraction(value: float, name: str, what: str = "") -> float:
    """``value`` as a float in [0, 1], else UserError ``<name> must be in [0, 1]<what>, but got ...``."""
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise UserError(f"{name} must be in [0, 1]{what}, but got {value}")
    return v


def check_at_least(value: int, minimum: int, name: str) -> int:
    """``value`` if it is at least ``minimum``, else UserError ``<name> must be at least <minimum>, ...``."""
    if value < minimum:
        raise UserError(f"{name} must be at least {minimum}, but got {value}")
    return value
