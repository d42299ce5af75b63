"""Adapters to other multi-agent APIs: agent-stacked arrays <-> dicts keyed by agent name.

- ``dcgenv.adapters.jaxmarl``: a JaxMARL-style ``MultiAgentEnv`` view (pure JAX, jittable);
  needs nothing beyond dcgenv.
- ``dcgenv.adapters.pettingzoo``: a PettingZoo ``ParallelEnv`` (NumPy in, NumPy out); needs
  the optional ``pettingzoo`` package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp


def unstack(tree: Any, agents: Sequence[str]) -> dict[str, Any]:
    """Agent-stacked pytree -> ``{agent: that agent's slice}``."""
    return {a: jax.tree.map(lambda x, i=i: x[i], tree) for i, a in enumerate(agents)}


def stack(per_agent: Mapping[str, Any], agents: Sequence[str]) -> Any:
    """``{agent: value}`` -> agent-stacked pytree, in the order of ``agents``."""
    missing = [a for a in agents if a not in per_agent]
    unknown = sorted(set(per_agent) - set(agents))
    if missing or unknown:
        raise ValueError(f"actions must have one entry per agent {list(agents)}; "
                         f"missing {missing}, unknown {unknown}")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *(per_agent[a] for a in agents))

