"""Networks (flax.linen): observation encoders, the CommNet actor, the (centralised) critic.

The actor acts for all ``N`` agents of *one* environment at once (inputs ``[N, D]``), so that
CommNet's communication hops can mix agents; parameters are shared across agents (every layer
is applied row-wise) and a one-hot agent id may be part of the input. Every message goes
through a ``dcgenv.comms`` channel, one key per (hop, sender), and the actor returns the
channel's bits and differentiable cost summed over alive senders.

Action heads follow the environment's action space: ``Discrete(n)`` -> a categorical
(``distrax.Categorical``); a ``Box``/``Normal`` leaf (e.g. GridWorld's ``message``) -> a
diagonal Gaussian with a learned, state-independent log-std; a ``Dict`` of those -> a dict of
distributions whose log-probabilities are summed (:func:`log_prob`, :func:`entropy`).
"""

from __future__ import annotations

from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dcgenv import comms, spaces


def head_spec(space: spaces.Space) -> tuple[tuple[str | None, str, int], ...]:
    """``((name, kind, size), ...)`` for an action space; ``name`` None for a bare leaf."""
    def leaf(name, s):
        if isinstance(s, spaces.Discrete):
            return (name, "categorical", int(s.n))
        if isinstance(s, spaces.Box) and len(s.shape) == 1:
            return (name, "gaussian", int(s.shape[0]))
        raise ValueError(f"unsupported action space {s!r} (Discrete or 1-d Box/Normal)")
    if isinstance(space, spaces.Dict):
        return tuple(leaf(k, s) for k, s in space.spaces.items())
    return (leaf(None, space),)


def flatten_obs(obs: Any, num_agents: int, agent_id: bool = False) -> jax.Array:
    """Agent-stacked observation pytree -> float32 ``[N, D]`` (leaves raveled, concatenated),
    followed by a one-hot agent id if ``agent_id``."""
    leaves = [jnp.asarray(x).reshape(num_agents, -1).astype(jnp.float32)
              for x in jax.tree.leaves(obs)]
    if agent_id:
        leaves.append(jnp.eye(num_agents, dtype=jnp.float32))
    return jnp.concatenate(leaves, axis=-1)


class MLP(nn.Module):
    hidden: int
    layers: int = 2

    @nn.compact
    def __call__(self, x):
        for _ in range(self.layers):
            x = nn.tanh(nn.Dense(self.hidden)(x))
        return x


class Actor(nn.Module):
    """Encoder (MLP or GRU) -> ``hops`` CommNet hops through ``channel`` -> action heads.

    ``__call__(carry, obs, alive, reset, key, train)`` with ``obs`` ``[N, D]``, ``alive``
    bool ``[N]``, ``reset`` a bool scalar (episode start: the GRU carry is zeroed), ``key``
    the step's comm key, ``train`` a Python bool (the channel's static mode). Returns
    ``(carry, dists, comm)``; ``comm`` = ``{"bits", "cost", "messages"}`` summed over the
    alive senders and hops of this step. ``hops=0`` is an actor without communication.
    """

    heads: tuple[tuple[str | None, str, int], ...]
    hidden: int = 64
    encoder: str = "mlp"
    hops: int = 1
    message_dim: int = 8
    aggregate: str = "mean"
    channel: comms.Channel = comms.Continuous()

    @nn.compact
    def __call__(self, carry, obs, alive, reset, key, train: bool):
        n = obs.shape[0]
        if self.encoder == "gru":
            carry = jnp.where(reset, jnp.zeros_like(carry), carry)
            x = nn.tanh(nn.Dense(self.hidden)(obs))
            carry, h0 = nn.GRUCell(self.hidden)(carry, x)
        else:
            h0 = MLP(self.hidden)(obs)
        h, alive_f = h0, alive.astype(jnp.float32)
        bits = cost = jnp.zeros((), jnp.float32)
        shape = self.channel.message_shape(1, self.message_dim)
        for hop in range(self.hops):
            z = nn.Dense(int(np.prod(shape)))(h).reshape(n, *shape)
            keys = jax.random.split(jax.random.fold_in(key, hop), n)
            z_hat, stats = jax.vmap(lambda k, m: self.channel.send(k, m, train=train))(keys, z)
            m = z_hat.reshape(n, -1)
            if self.aggregate == "gated":
                gate = nn.sigmoid(nn.Dense(1)(h))[:, 0]
                c = comms.gated_mean(m, gate, alive)
            elif self.aggregate == "attention":
                q, k = nn.Dense(self.hidden)(h), nn.Dense(self.hidden)(h)
                c, _ = comms.attention(q, k, m, alive)
            else:
                c = comms.broadcast_mean(m, alive)
            h = nn.tanh(nn.Dense(self.hidden)(h) + nn.Dense(self.hidden)(c) + h0)
            bits += jnp.sum(stats["bits"] * alive_f)
            cost += jnp.sum(stats["cost"] * alive_f)
        messages = self.hops * alive_f.sum()
        dists = {}
        for name, kind, size in self.heads:
            out = nn.Dense(size, kernel_init=nn.initializers.orthogonal(0.01))(h)
            if kind == "categorical":
                dists[name] = distrax.Categorical(logits=out)
            else:
                log_std = self.param(f"log_std_{name}", nn.initializers.zeros, (size,))
                dists[name] = distrax.MultivariateNormalDiag(out, jnp.exp(log_std))
        return carry, dists, {"bits": bits, "cost": cost, "messages": messages}


class Critic(nn.Module):
    """Per-agent values ``[N]`` from ``[N, D]`` inputs; ``centralised``: every agent sees the
    concatenation of all agents' inputs (MAPPO) plus its own; otherwise its own (IPPO)."""

    hidden: int = 64
    centralised: bool = True

    @nn.compact
    def __call__(self, obs):
        if self.centralised:
            joint = jnp.broadcast_to(obs.reshape(1, -1), (obs.shape[0], obs.size))
            obs = jnp.concatenate([joint, obs], -1)
        return nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(
            MLP(self.hidden)(obs))[:, 0]


def _split(dists, action):
    return [(d, action if name is None else action[name]) for name, d in dists.items()]


def sample(dists, key):
    """One action per agent (the env's action pytree); a bare leaf where the space is one."""
    keys = jax.random.split(key, len(dists))
    out = {name: d.sample(seed=k) for (name, d), k in zip(dists.items(), keys, strict=True)}
    return out[None] if None in out else out


def mode(dists):
    """Greedy action: argmax of each categorical, mean of each Gaussian."""
    out = {name: d.mode() for name, d in dists.items()}
    return out[None] if None in out else out


def log_prob(dists, action) -> jax.Array:
    return sum(d.log_prob(a) for d, a in _split(dists, action))


def entropy(dists) -> jax.Array:
    return sum(d.entropy() for d in dists.values())
