"""Checks of option values shared by the Python API, one home for the ranges and positivity every layer checks.

Each takes the ``name`` of what it checks and returns the value or raises naming it: the library passes the
parameter's Python name (``max_frames``) and gets an :class:`uolrps.core.errors.OptionError`, which the command line
rewords with its flag (``--max-frames``); a CLI's own check passes its flag and gets a UserError as written (see
:func:`uolrps.core.errors.option_error`). Light: uolrps.runtime imports it.
"""

from __future__ import annotations

from typing import Iterable

from uolrps.core.errors import option_error


def check_fraction(value: float, name: str, what: str = "") -> float:
    """``value`` as a float in [0, 1], else ``<name> must be in [0, 1]<what>, but got ...``."""
    return check_interval(value, name, 0, 1, "[]", what)


def check_interval(value: float, name: str, low: float, high: float, ends: str = "[]", what: str = "") -> float:
    """``value`` as a float in the interval from ``low`` to ``high`` (``ends``: ``[]``, ``[)``, ``(]`` or ``()``
    says which ends belong to it), else ``<name> must be in [low, high)<what>, but got ...``."""
    v = float(value)
    above = v >= low if ends[0] == "[" else v > low
    below = v <= high if ends[1] == "]" else v < high
    if not (above and below):
        raise option_error(f"{name} must be in {ends[0]}{low:g}, {high:g}{ends[1]}{what}, but got {value}", name)
    return v


def check_between(value: float, low: float, high: float, name: str) -> float:
    """``value`` if ``low <= value <= high``, else ``<name> must be between <low> and <high>, but got ...``."""
    if not low <= value <= high:
        raise option_error(f"{name} must be between {low:g} and {high:g}, but got {value}", name)
    return value


def check_at_least(value: int, minimum: int, name: str) -> int:
    """``value`` if it is at least ``minimum``, else ``<name> must be at least <minimum>, but got ...``."""
    if value < minimum:
        raise option_error(f"{name} must be at least {minimum}, but got {value}", name)
    return value


def check_positive(value: float, name: str, what: str = "number") -> float:
    """``value`` if it is > 0 (NaN is not), else ``<name> must be a positive <what>, but got ...`` (``what``:
    e.g. ``number of frames``, ``frame rate``)."""
    if not value > 0:
        raise option_error(f"{name} must be a positive {what}, but got {value}", name)
    return value


def check_choice(value: str, choices: Iterable[str], name: str) -> str:
    """``value`` if it is one of ``choices``, else ``<name> must be a, b or c, but got 'x'``."""
    choices = tuple(choices)
    if value not in choices:
        listed = " or ".join(choices) if len(choices) < 3 else f"{', '.join(choices[:-1])} or {choices[-1]}"
        raise option_error(f"{name} must be {listed}, but got {value!r}", name)
    return value


MAX_INPUT_SIZE = 1024  # pixels a side: ViT-S/16 at 1024 is 4096 tokens, ~0.4 GB of attention a layer in FP32;
# the paper works at 224-480, and a size of 100000 would exhaust any memory before saying why
MAX_EXPORT_BATCH = 256


def check_input_size(value, name: str = "size") -> int:
    """A model input size S (S x S pixels): 1 to :data:`MAX_INPUT_SIZE`."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_INPUT_SIZE:
        raise option_error(f"{name} must be a number of pixels from 1 to {MAX_INPUT_SIZE}, but got {value!r} "
                           "(224 is the paper's; larger sizes cost memory as the square of the size)", name)
    return value


# ---- the options of a run, checked where each layer takes them (RunConfig, Localizer, the streams) -------------
def check_threshold(value: float | None, name: str = "threshold") -> float | None:
    """A box threshold: None (the model's own) or a fraction of the heatmap maximum."""
    return None if value is None else check_fraction(value, name, " (a fraction of the heatmap maximum)")


def check_smooth(value: float, name: str = "smooth") -> float:
    """Heatmap smoothing over time, in [0, 1)."""
    return check_interval(value, name, 0, 1, "[)", " (0 = off, 0.8 = strong)")


def check_max_frames(value: int | None, name: str = "max_frames") -> int | None:
    """None (no limit) or a positive number of frames."""
    return None if value is None else check_positive(value, name, "number of frames")


def check_batch_wait_ms(value: float, name: str = "batch_wait_ms") -> float:
    """How long the inference stage waits to fill a batch: 0 to 10 s."""
    return check_between(value, 0, 10_000, name)


def check_stall_timeout(value: float, name: str = "stall_timeout") -> float:
    """Seconds without a frame before a live source is reopened."""
    return check_positive(value, name, "number of seconds")


def check_reopen_limit(value: int | None, name: str = "reopen_limit") -> int | None:
    """None (no limit) or a positive number of failed recoveries in a row."""
    return None if value is None else check_positive(value, name, "number of attempts")


def check_inflight(value: int | None, name: str = "inflight") -> int | None:
    """None (the backend's own) or how many inference calls may be in flight at once: 1 to 64."""
    return None if value is None else int(check_between(value, 1, 64, name))
