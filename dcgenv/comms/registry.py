"""The channel table: ``dcgenv.comms.make(name, **kwargs)``, like ``dcgenv.make`` for envs.

One place that names every channel; the learners' configs, the baselines and the error
messages all read it::

    channel = comms.make("ddcl", delta=0.2)
    comms.CHANNELS            # {"continuous": Continuous, "ddcl": DDCL, ...}
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from dcgenv.comms import channels

CHANNELS: dict[str, type[channels.Channel]] = {
    "continuous": channels.Continuous, "ddcl": channels.DDCL, "dru": channels.DRU,
    "fakequant": channels.FakeQuant, "gaussian": channels.GaussianNoise,
    "gumbel": channels.GumbelSoftmax, "silent": channels.Silent,
}


def make(name: str, **kwargs: Any) -> channels.Channel:
    """The channel registered as ``name``, built with ``kwargs`` (its dataclass fields).

    ``ValueError`` naming the allowed names for an unknown channel, and the allowed fields for
    an unknown keyword. ``WithStop`` wraps another channel, so it is built directly:
    ``comms.WithStop(comms.make("ddcl"))``.
    """
    if name not in CHANNELS:
        close = difflib.get_close_matches(str(name), CHANNELS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown channel {name!r}{hint}; allowed: {', '.join(CHANNELS)}")
    cls = CHANNELS[name]
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"channel {name!r}: unknown argument(s) {unknown}; "
                         f"allowed: {allowed or 'none'}")
    return cls(**kwargs)
