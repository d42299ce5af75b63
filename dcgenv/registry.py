"""Environment registry: ``make``, ``register``, ``registered``.

An id is ``Name-v<N>`` or ``Name-level-v<N>`` (e.g. ``TrafficJunction-medium-v0``). Each
environment module registers its own ids when imported, so the registry is a dict, never an
if/elif chain, and a newly registered environment is covered by the conformance test at once.

``make(id, **overrides)`` routes each override by name: a constructor argument of the
environment (static things that change array shapes: grid size, number of agents, message
length, channel) or a field of its ``EnvParams`` (numbers that may vary per episode or be
vmapped over). Anything else, or a value of the wrong type, is a ``ValueError`` naming the
allowed fields; so is a params value outside its documented range (``EnvParams.validate``:
``make("TrafficJunction-easy-v0", add_rate=5)`` names ``add_rate``, ``5.0`` and ``[0, 1]``).
Constructor arguments are checked by the environment's constructor.

``make("jaxmarl:<JaxMARL id>", **kwargs)`` builds a JaxMARL environment (``jaxmarl.make(id,
**kwargs)``) behind dcgenv's API (``dcgenv.adapters.from_jaxmarl``, which takes
``action_mask_in_obs`` and ``max_steps_in_episode`` itself and reads a SMAX ``scenario`` given
as a SMAC map name), so a learner config can name one: ``env: jaxmarl:MPE_simple_spread_v3``,
or ``env: jaxmarl:HeuristicEnemySMAX`` with ``env_kwargs: {scenario: 3s_vs_5z}``. JaxMARL is
imported only then; without it the error says ``pip install "dcgenv[jaxmarl]"``.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import numbers
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from dcgenv.core import EnvParams, MultiAgentEnv

JAXMARL = "jaxmarl:"  # make("jaxmarl:<id>"): a JaxMARL environment through from_jaxmarl
_ID = re.compile(r"^[A-Z][A-Za-z0-9]*(-[a-z0-9]+)?-v\d+$")


class _Entry(NamedTuple):
    factory: Callable[..., MultiAgentEnv]
    kwargs: dict[str, Any]


_REGISTRY: dict[str, _Entry] = {}


def register(env_id: str, factory: Callable[..., MultiAgentEnv], *, overwrite: bool = False,
             **kwargs: Any) -> None:
    """Register ``factory(**kwargs)`` under ``env_id`` (``Name-v0`` or ``Name-level-v0``)."""
    if not _ID.match(env_id):
        raise ValueError(f"environment id {env_id!r} is not of the form 'Name-v0' or "
                         "'Name-level-v0' (CamelCase name, lower-case level, version)")
    if env_id in _REGISTRY and not overwrite:
        raise ValueError(f"environment id {env_id!r} is already registered; "
                         "pass overwrite=True to replace it")
    _REGISTRY[env_id] = _Entry(factory, dict(kwargs))


def registered() -> list[str]:
    """All registered ids, sorted."""
    return sorted(_REGISTRY)


def make(env_id: str, **overrides: Any) -> tuple[MultiAgentEnv, Any]:
    """Build a registered environment and its default params, with overrides applied
    (``jaxmarl:<id>``: a JaxMARL environment, the overrides passed to ``jaxmarl.make``)."""
    if env_id.startswith(JAXMARL):
        from dcgenv.adapters.from_jaxmarl import from_jaxmarl
        return from_jaxmarl(env_id[len(JAXMARL):], **overrides)
    if env_id not in _REGISTRY:
        close = difflib.get_close_matches(env_id, _REGISTRY, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise ValueError(f"unknown environment id {env_id!r}; {hint}"
                         f"registered ids: {', '.join(registered())}")
    factory, kwargs = _REGISTRY[env_id]
    signature = inspect.signature(factory)
    ctor = {k: v for k, v in overrides.items() if k in signature.parameters}
    for name, value in ctor.items():
        default = signature.parameters[name].default
        if default is not inspect.Parameter.empty and default is not None:
            _check_type(env_id, name, default, value)
    env = factory(**{**kwargs, **ctor})
    params = env.default_params
    fields = {f.name for f in dataclasses.fields(params)}
    rest = {k: v for k, v in overrides.items() if k not in ctor}
    unknown = sorted(set(rest) - fields)
    if unknown:
        ctor_names = [p for p in signature.parameters if p not in ("self", "kwargs")]
        raise ValueError(f"{env_id}: unknown override(s) {unknown}; constructor arguments: "
                         f"{ctor_names}; params fields: {sorted(fields)}")
    params = params.replace(**{k: _coerce(env_id, k, getattr(params, k), v)
                               for k, v in rest.items()})
    if isinstance(params, EnvParams):
        params.validate(env_id)  # every concrete field in its documented range
    return env, params


def _check_type(env_id: str, name: str, default: Any, value: Any) -> None:
    """Python-typed defaults: bool wants a bool, int an integer, float any real, str a str."""
    kinds = {bool: (bool, np.bool_), int: numbers.Integral, float: numbers.Real, str: str}
    allowed = kinds.get(type(default))
    if allowed is None:
        return
    is_bool = isinstance(value, (bool, np.bool_))
    if not isinstance(value, allowed) or (type(default) is not bool and is_bool):
        raise ValueError(f"{env_id}: {name}={value!r} must be a {type(default).__name__} "
                         f"(default {default!r})")


def _coerce(env_id: str, name: str, default: Any, value: Any) -> Any:
    """Check an override of a params field against its default; return it in that dtype."""
    want = np.asarray(default)
    want = want.astype(jax.dtypes.canonicalize_dtype(want.dtype))  # float64 -> float32 unless x64
    if isinstance(default, (bool, int, float, str)) and not isinstance(value, jax.Array):
        _check_type(env_id, name, default, value)
        return float(value) if type(default) is float else value
    if isinstance(value, jax.Array):  # possibly a tracer: check shape and dtype only
        shape, dtype = value.shape, value.dtype
    else:
        try:
            value = np.asarray(value)
        except Exception as err:  # noqa: BLE001 - any conversion failure is a bad value
            raise ValueError(f"{env_id}: {name} must be an array like {want.shape}") from err
        shape, dtype = value.shape, value.dtype
    if shape != want.shape or not np.can_cast(dtype, want.dtype, "same_kind"):
        raise ValueError(f"{env_id}: {name} must be a {want.dtype} array of shape {want.shape}, "
                         f"got {dtype} {shape}")
    return jax.numpy.asarray(value, want.dtype)
