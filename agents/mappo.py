"""MAPPO / IPPO with an optional CommNet actor, PureJaxRL style.

    train = agents.make_train(Config(env="TrafficJunction-easy-v0"))
    out = jax.jit(train)(jax.random.key(0))   # compiles whole; seeds vmapped inside

One update = a rollout of ``num_steps`` steps in ``num_envs`` vmapped environments, GAE, then
``update_epochs`` passes of PPO over ``num_minibatches`` minibatches of *environments* (whole
rollout segments, so a GRU actor trains with truncated BPTT from the carry it had at the
segment's start). The actor acts for all agents of one environment at once (CommNet hops mix
them inside the policy every step; the channel is in training mode, the comm keys are stored so
the loss replays the exact same messages); the critic is centralised (MAPPO: all agents'
observations) or local (IPPO). Losses are averaged over *alive* agent-steps only; the loss adds
``comm_coef * channel cost`` (summed over alive senders, averaged over env-steps).

Per-agent returns: an agent's trace ends where the episode ends (bootstrapping from
``info["final_observation"]`` unless ``terminated``) and where the agent leaves (alive now,
not alive in the final observation: value 0 after it), so cars that take a freed slot later do
not inherit the previous car's return. ``team_reward`` replaces each reward by the team mean.

:func:`make_trainer` exposes the pieces the CLI needs (``init``, ``run`` a chunk of updates,
greedy ``evaluate``); ``agents.make_train`` composes them into one ``train(key)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

import dcgenv
from agents import networks as nets
from agents.config import Config, make_channel, make_optimizer
from agents.loop import make_loop


class Runner(NamedTuple):
    """Everything one seed's training carries from update to update."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: Any
    carry: jax.Array  # [E, N, H] actor recurrent state (unused by the MLP encoder)
    reset: jax.Array  # [E] bool: the next step starts an episode
    key: jax.Array


class Trainer(NamedTuple):
    config: Config
    env: Any
    env_params: Any
    init: Any  # key -> (Runner batched over seeds, update index)
    run: Any  # (state, length, end) -> (state, metrics [length, ...] seed-mean)
    evaluate: Any  # (params of one seed, key, episodes) -> dict of greedy metrics
    collect: Any  # Runner -> (Runner, batch): one seed's rollout and GAE
    learn: Any  # (Runner, batch) -> (Runner, mean losses): one seed's PPO epochs
    loss: Any  # (params, batch) -> (loss, parts) on the whole batch


def _masked_mean(x, mask):
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _episode_metrics(tr) -> dict[str, jax.Array]:
    ended = tr["ended"].astype(jnp.float32)
    n = ended.sum()
    mean = lambda k: jnp.where(n > 0, jnp.sum(tr[k] * ended) / jnp.maximum(n, 1), jnp.nan)
    return {"episodes": n, "success": mean("success"), "return": mean("team_return")}


def make_trainer(config: Config, progress=None) -> Trainer:
    """Build everything (validating ``config`` first); ``progress(update, metrics)`` is called
    from inside the compiled loop every ``config.log_every`` updates (seed-mean metrics)."""
    cfg = config.validate()
    env, env_params = dcgenv.make(cfg.env, **cfg.env_kwargs)
    env = dcgenv.LogWrapper(env)
    n, E, T = env.num_agents, cfg.num_envs, cfg.num_steps
    actor = nets.Actor(nets.head_spec(env.action_space(env_params)), cfg.hidden, cfg.encoder,
                       cfg.hops if cfg.comm == "commnet" else 0, cfg.message_dim, cfg.aggregate,
                       make_channel(cfg))
    critic = nets.Critic(cfg.hidden, centralised=cfg.algorithm == "mappo")
    steps = cfg.num_updates * cfg.update_epochs * cfg.num_minibatches
    lr = optax.linear_schedule(cfg.lr, 0.0, steps) if cfg.anneal_lr else cfg.lr
    tx = make_optimizer(cfg, lr)
    carry_width = cfg.hidden if cfg.encoder == "gru" else 1
    v_reset = jax.vmap(env.reset, in_axes=(0, None))
    v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def features(obs):  # one env's obs -> ([N, D], alive [N])
        x = nets.flatten_obs(obs, n, cfg.agent_id)
        key = next((k for k in ("alive", "active") if isinstance(obs, dict) and k in obs), None)
        return x, (jnp.ones(n, bool) if key is None else obs[key].astype(bool))

    def act(params, carry, x, alive, reset, comm_key, act_key, train, greedy=False):
        carry, dists, comm = actor.apply(params, carry, x, alive, reset, comm_key, train)
        action = nets.mode(dists) if greedy else nets.sample(dists, act_key)
        return carry, action, nets.log_prob(dists, action), comm

    def evaluate_actions(params, carry, x, alive, reset, comm_key, action):
        carry, dists, comm = actor.apply(params, carry, x, alive, reset, comm_key, True)
        return carry, nets.log_prob(dists, action), nets.entropy(dists), comm["cost"]

    def init(key):
        k_actor, k_critic, k_env, key = jax.random.split(key, 4)
        obs, env_state = v_reset(jax.random.split(k_env, E), env_params)
        x, alive = jax.vmap(features)(obs)
        carry = jnp.zeros((E, n, carry_width))
        params = {"actor": actor.init(k_actor, carry[0], x[0], alive[0], True, k_actor, True),
                  "critic": critic.init(k_critic, x[0])}
        return Runner(params, tx.init(params), env_state, obs, carry, jnp.ones(E, bool), key)

    def scheduled(update):
        """Env params for training update ``update`` (``config.curriculum`` applied)."""
        if not cfg.curriculum:
            return env_params
        c = cfg.curriculum
        frac = update / cfg.num_updates
        w = jnp.clip((frac - c["begin"]) / max(c["finish"] - c["begin"], 1e-9), 0.0, 1.0)
        return env_params.replace(**{c["param"]: c["start"] + (c["end"] - c["start"]) * w})

    def env_step(runner: Runner, step_key, env_params=env_params):
        p = runner.params
        k_act, k_comm, k_env = jax.random.split(step_key, 3)
        comm_keys = jax.random.split(k_comm, E)
        x, alive = jax.vmap(features)(runner.obs)
        carry, action, logp, comm = jax.vmap(
            lambda *a: act(p["actor"], *a, train=True))(
            runner.carry, x, alive, runner.reset, comm_keys, jax.random.split(k_act, E))
        value = jax.vmap(lambda v: critic.apply(p["critic"], v))(x)
        obs, env_state, reward, term, trunc, info = v_step(
            jax.random.split(k_env, E), runner.env_state, action, env_params)
        x_final, alive_next = jax.vmap(features)(info["final_observation"])
        next_value = jax.vmap(lambda v: critic.apply(p["critic"], v))(x_final)
        if cfg.team_reward:
            reward = jnp.broadcast_to(reward.mean(-1, keepdims=True), reward.shape)
        done = term | trunc
        tr = dict(x=x, alive=alive, reset=runner.reset, comm_key=jax.random.key_data(comm_keys),
                  action=action, logp=logp, value=value, next_value=next_value,
                  leaves=alive & ~alive_next, reward=reward, term=term, done=done,
                  bits=comm["bits"], messages=comm["messages"],
                  env_bits=info.get("bits", jnp.zeros(E)),
                  ended=info["returned_episode"], success=info["returned_episode_success"],
                  team_return=info["returned_team_return"])
        return runner._replace(env_state=env_state, obs=obs, carry=carry, reset=done), tr

    def gae(tr):
        def back(next_adv, t):
            cont = 1.0 - t["leaves"]
            boot = t["next_value"] * (1.0 - t["term"][:, None]) * cont
            delta = t["reward"] + cfg.gamma * boot - t["value"]
            adv = delta + cfg.gamma * cfg.gae_lambda * (1.0 - t["done"][:, None]) * cont * next_adv
            return adv, adv
        keys = ("leaves", "next_value", "term", "reward", "value", "done")
        seq = {k: tr[k].astype(jnp.float32) for k in keys}
        _, adv = jax.lax.scan(back, jnp.zeros_like(tr["value"][0]), seq, reverse=True)
        return adv, adv + tr["value"]

    def loss_fn(params, carry0, tr, adv, targets):
        ev = lambda c, t: evaluate_actions(params["actor"], c, t["x"], t["alive"], t["reset"],
                                           jax.random.wrap_key_data(t["comm_key"]), t["action"])
        seq = {k: tr[k] for k in ("x", "alive", "reset", "comm_key", "action")}
        if cfg.encoder == "gru":  # truncated BPTT over the segment
            def step(c, t):
                c, *out = jax.vmap(ev)(c, t)
                return c, out
            _, (logp, ent, cost) = jax.lax.scan(step, carry0, seq)
        else:
            _, logp, ent, cost = jax.vmap(jax.vmap(ev, in_axes=(0, 0)), in_axes=(None, 0))(
                carry0, seq)
        value = jax.vmap(jax.vmap(lambda v: critic.apply(params["critic"], v)))(tr["x"])
        mask = tr["alive"].astype(jnp.float32)
        mu = _masked_mean(adv, mask)
        adv = (adv - mu) / (jnp.sqrt(_masked_mean((adv - mu) ** 2, mask)) + 1e-8)
        ratio = jnp.exp(logp - tr["logp"])
        clipped = jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps)
        pg = _masked_mean(-jnp.minimum(ratio * adv, clipped * adv), mask)
        v_clip = tr["value"] + jnp.clip(value - tr["value"], -cfg.clip_eps, cfg.clip_eps)
        vf = 0.5 * _masked_mean(jnp.maximum((value - targets) ** 2, (v_clip - targets) ** 2),
                                mask)
        ent = _masked_mean(ent, mask)
        cost = cost.mean()
        total = pg + cfg.vf_coef * vf - cfg.ent_coef * ent + cfg.comm_coef * cost
        return total, {"loss": total, "pg_loss": pg, "vf_loss": vf, "entropy": ent,
                       "comm_cost": cost}

    def collect(runner: Runner, update=0):
        """Rollout of ``num_steps`` steps and GAE: ``(runner, batch)`` for one seed."""
        carry0 = runner.carry
        key, k_roll = jax.random.split(runner.key)
        params_t = scheduled(update)
        runner, tr = jax.lax.scan(lambda r, k: env_step(r, k, params_t),
                                  runner._replace(key=key), jax.random.split(k_roll, T))
        return runner, (carry0, tr, *gae(tr))

    def loss(params, batch):
        """The PPO loss of ``params`` on a whole batch: ``(total, parts)``."""
        return loss_fn(params, *batch)

    def learn(runner: Runner, batch):
        """``update_epochs`` x ``num_minibatches`` (minibatches of environments) PPO steps."""
        carry0, tr, adv, targets = batch
        key, k_perm = jax.random.split(runner.key)

        def epoch(state, k):
            groups = jax.random.permutation(k, E).reshape(cfg.num_minibatches, -1)

            def minibatch(state, idx):
                params, opt_state = state
                mb = (carry0[idx], *jax.tree.map(lambda a: a[:, idx], (tr, adv, targets)))
                grads, m = jax.grad(loss_fn, has_aux=True)(params, *mb)
                upd, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, upd), opt_state), m
            return jax.lax.scan(minibatch, state, groups)

        (params, opt_state), losses = jax.lax.scan(
            epoch, (runner.params, runner.opt_state), jax.random.split(k_perm, cfg.update_epochs))
        runner = runner._replace(params=params, opt_state=opt_state, key=key)
        return runner, jax.tree.map(jnp.mean, losses)

    def update(runner: Runner, update=0):
        """One PPO update for one seed: rollout, GAE, epochs x minibatches."""
        runner, batch = collect(runner, update)
        runner, losses = learn(runner, batch)
        tr = batch[1]
        metrics = _episode_metrics(tr)
        metrics["bits_per_message"] = tr["bits"].sum() / jnp.maximum(tr["messages"].sum(), 1.0)
        metrics["env_bits_per_step"] = jnp.mean(tr["env_bits"])
        if cfg.curriculum:
            metrics[cfg.curriculum["param"]] = jnp.asarray(
                getattr(scheduled(update), cfg.curriculum["param"]), jnp.float32)
        return runner, {**metrics, **losses}

    init_seeds, run = make_loop(init, update, cfg.num_seeds, cfg.log_every, progress)

    def evaluate(params, key, episodes: int):
        """Greedy policy (channel in evaluation mode) for ``episodes`` episodes, one per env."""
        k_reset, key = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(k_reset, episodes), env_params)
        carry = jnp.zeros((episodes, n, carry_width))

        def step(state, k):
            obs, env_state, carry, reset, seen, acc = state
            k_comm, k_env = jax.random.split(k)
            x, alive = jax.vmap(features)(obs)
            carry, action, _, comm = jax.vmap(
                lambda *a: act(params["actor"], *a, None, train=False, greedy=True))(
                carry, x, alive, reset, jax.random.split(k_comm, episodes))
            obs, env_state, _, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, episodes), env_state, action, env_params)
            first = info["returned_episode"] & ~seen
            acc = {"success": acc["success"] + jnp.sum(first * info["returned_episode_success"]),
                   "return": acc["return"] + jnp.sum(first * info["returned_team_return"]),
                   "bits": acc["bits"] + jnp.sum(comm["bits"] * ~seen),
                   "messages": acc["messages"] + jnp.sum(comm["messages"] * ~seen),
                   "env_bits": acc["env_bits"] + jnp.sum(info.get("bits", 0.0) * ~seen)}
            return (obs, env_state, carry, term | trunc, seen | first, acc), None

        zero = jnp.zeros((), jnp.float32)
        acc = dict(success=zero, **{k: zero for k in ("return", "bits", "messages", "env_bits")})
        state = (obs, env_state, carry, jnp.ones(episodes, bool), jnp.zeros(episodes, bool), acc)
        (*_, seen, acc), _ = jax.lax.scan(step, state, jax.random.split(
            key, env_params.max_steps_in_episode))
        return {"episodes": seen.sum(), "success": acc["success"] / episodes,
                "return": acc["return"] / episodes,
                "bits_per_message": acc["bits"] / jnp.maximum(acc["messages"], 1.0),
                "env_bits_per_episode": acc["env_bits"] / episodes}

    return Trainer(cfg, env, env_params, init_seeds, run, evaluate, collect, learn, loss)
