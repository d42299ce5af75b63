"""Small argument validators shared by every constructor (envs, channels, wrappers, agents).

Each returns the value in its canonical Python type or raises ``ValueError`` that names the
owner, the argument, the value and what is allowed::

    checks.integer("TrafficJunction", "vision", vision, low=0)
    checks.real("DDCL", "delta", delta, low=0, low_open=True)
    checks.flag("GridWorldGoal", "train_channel", train_channel)
    checks.choice("TrafficJunction", "level", level, ("easy", "medium", "hard"))

``bool`` is never accepted as an integer or a real (``True`` is an ``int`` in Python), and
NumPy scalars are accepted like Python ones. Not for traced values: these run on the host.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np


def describe_range(low: float | None = None, high: float | None = None, low_open: bool = False,
                   high_open: bool = False) -> str:
    """``"[0, 1]"``, ``"(0, inf)"``, ...: the interval as the error messages write it."""
    lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
    hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
    return f"{lo}, {hi}"


def in_range(value: float, low: float | None = None, high: float | None = None, *,
             low_open: bool = False, high_open: bool = False) -> bool:
    """Whether ``value`` lies in the interval. NaN never does, and neither does an infinity:
    an unbounded side is open, as :func:`describe_range` writes it (``[0, inf)``)."""
    if value != value or value in (math.inf, -math.inf):  # NaN, +-inf
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return not (high is not None and (value >= high if high_open else value > high))


def integer(owner: str, name: str, value: Any, low: int | None = None,
            high: int | None = None) -> int:
    """A Python or NumPy integer (not a bool) in ``[low, high]``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not ok or not in_range(value, low, high):
        raise ValueError(f"{owner}: {name} must be an integer in "
                         f"{describe_range(low, high)}, got {value!r}")
    return int(value)


def real(owner: str, name: str, value: Any, low: float | None = None,
         high: float | None = None, *, low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (not a bool) in the interval; returned as a Python float."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if not ok or not math.isfinite(value) or not in_range(value, low, high, low_open=low_open,
                                                           high_open=high_open):
        raise ValueError(f"{owner}: {name} must be a finite number in "
                         f"{describe_range(low, high, low_open, high_open)}, got {value!r}")
    return float(value)


def flag(owner: str, name: str, value: Any) -> bool:
    """A Python or NumPy bool (not 0/1)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def choice(owner: str, name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """One of ``allowed``."""
    allowed = tuple(allowed)
    if not any(value == a and type(value) is type(a) for a in allowed):
        close = difflib.get_close_matches(value, [a for a in allowed if isinstance(a, str)],
                                          n=1) if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{owner}: unknown {name} {value!r}{hint}; allowed: {list(allowed)}")
    return value
