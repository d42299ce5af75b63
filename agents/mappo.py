"""MAPPO / IPPO with an optional CommNet actor, PureJaxRL style.

    train = agents.make_train(PPOConfig(env="TrafficJunction-easy-v0"))
    out = jax.jit(train)(jax.random.key(0))   # compiles whole; seeds vmapped inside

One update = a rollout of ``num_steps`` steps in ``num_envs`` vmapped environments, GAE, then
``update_epochs`` passes of PPO over ``num_minibatches`` minibatches of *environments* (whole
rollout segments, so a GRU actor trains with truncated BPTT from the carry it had at the
segment's start). The actor acts for all agents of one environment at once (CommNet hops mix
them inside the policy every step; the channel is in training mode, the comm keys are stored so
the loss replays the exact same messages); the critic is centralised (MAPPO: all agents'
observations) or local (IPPO). Losses are averaged over *alive* agent-steps only; the loss adds
``comm_coef * channel cost`` (summed over alive senders, averaged over env-steps; with
``comm_coef_warmup: [begin, finish]`` the coefficient of update ``i`` is ``comm_coef`` times a
linear ramp from 0 at ``begin`` to 1 at ``finish``, fractions of ``num_updates``:
:func:`comm_coef_at`). A learnable
channel (config keys ``entropy_coding``, ``gate``) keeps its parameters in the actor's, one set
per hop, and learns through that cost; the rollout and the greedy evaluation add up its stats
(``nets.message_sums``, not stored per step) into the coding metrics of docs/metrics.md.

Per-agent returns: an agent's trace ends where the episode ends (bootstrapping from
``info["final_observation"]`` unless ``terminated``) and where the agent leaves (alive now,
not alive in the final observation: value 0 after it), so cars that take a freed slot later do
not inherit the previous car's return. ``team_reward`` replaces each reward by the team mean.
``turn_taking`` (games whose ``active`` mask says whose turn it is: ``Negotiation-v0``) never
cuts a trace where the agent stops being active: it is waiting, and the reward it receives
when the other agent acts (the joint reward of an accepted proposal) is credited to the turn
it acted on; the critic then trains on every agent-step, the policy on active ones. Without
it, the proposer of an accepted proposal "leaves" on the next step and its proposal turn sees
reward 0 and no bootstrap. ``ent_coef_heads`` weighs each action head's entropy separately
(:func:`ppo_loss`).

:func:`make_trainer` exposes the pieces the CLI needs (``init``, ``run`` a chunk of updates,
greedy ``evaluate``) and, for tests, ``collect``, ``learn`` and ``loss``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

import dcgenv
from agents import attention as attn
from agents import networks as nets
from agents.config import PPOConfig, make_optimizer
from agents.loop import Trainer, global_norm, logged_success, make_loop, read_info
from dcgenv import comms


class Runner(NamedTuple):
    """Everything one seed's training carries from update to update."""

    params: Any  # {"actor": ..., "critic": ...}
    opt_state: Any
    env_state: Any
    obs: Any
    carry: jax.Array  # [E, N, H] actor recurrent state (unused by the MLP encoder)
    reset: jax.Array  # [E] bool: the next step starts an episode
    key: jax.Array
    per_env_fields = ("env_state", "obs", "carry", "reset")  # env axis first (agents.loop)


class Transition(NamedTuple):
    """One step of the ``E`` environments (a rollout stacks ``T`` of them: ``[T, E, ...]``)."""

    obs: jax.Array  # [E, N, D] observations, flattened (agent id appended)
    alive: jax.Array  # [E, N] bool
    reset: jax.Array  # [E] bool: this step starts an episode (the GRU carry is zeroed)
    comm_key: jax.Array  # [E, 2] raw key data of this step's channel noise (the loss replays it)
    action: Any
    log_prob: jax.Array  # [E, N]
    value: jax.Array  # [E, N]
    next_value: jax.Array  # [E, N] critic on info["final_observation"]
    leaves: jax.Array  # [E, N] bool: alive now, not alive in the final observation
    reward: jax.Array  # [E, N]
    terminated: jax.Array  # [E]
    done: jax.Array  # [E] terminated | truncated
    bits: jax.Array  # [E] CommNet channel bits (the learner's own messages)
    messages: jax.Array  # [E] CommNet messages sent
    env_bits: jax.Array  # [E] info["bits"]: the env's own messages
    episode_end: jax.Array  # [E] bool: an episode ended (LogWrapper's returned_episode)
    success: jax.Array  # [E] bool: ... and succeeded
    team_return: jax.Array  # [E] ... with this team return


class Batch(NamedTuple):
    """What one update learns from: a rollout and its GAE."""

    carry: jax.Array  # [E, N, H] the actor's recurrent state at the rollout's start
    traj: Transition  # [T, E, ...]
    advantages: jax.Array  # [T, E, N]
    targets: jax.Array  # [T, E, N]
    # the rollout's sums of the learned coding's stats (nets.message_sums, all steps and
    # environments added up: no per-step histograms kept); {} for a plain channel
    comm: Any = None


# The pieces make_trainer composes, in the order an update runs them: acting (networks,
# observations, values), advantages (gae), the PPO loss (replay, ppo_loss), metrics.


def make_networks(config: PPOConfig, env, env_params) -> tuple[nets.Actor, nets.Critic]:
    """The CommNet actor (no hops without ``comm: commnet``) and the critic (centralised for
    MAPPO, local for IPPO)."""
    actor = nets.Actor(nets.head_spec(env.action_space(env_params)), config.hidden,
                       config.encoder, config.hops if config.comm == "commnet" else 0,
                       config.message_dim, config.aggregate, config.message_channel,
                       config.gradient_tau, config.gradient_budget_k, config.bottleneck,
                       cost_weights=config.comm_coef_senders,
                       cost_into_trunk=config.comm_cost_trunk,
                       bottleneck_init_std=config.bottleneck_init_std)
    return actor, nets.Critic(config.hidden, centralised=config.algorithm == "mappo")


def observe(obs, num_agents: int, agent_id: bool, sparse_env=None):
    """One env's obs -> (features ``[N, D]``, alive ``[N]``: the env's ``alive``/``active``
    mask where its obs has one, else all True). With ``sparse_env`` (``obs_embedding``: the
    unwrapped env) the features are its sparse one-hot coordinates, a ``nets.SparseObs``."""
    x = (nets.flatten_obs(obs, num_agents, agent_id) if sparse_env is None
         else nets.sparse_features(sparse_env, obs, num_agents, agent_id))
    key = next((k for k in ("alive", "active") if isinstance(obs, dict) and k in obs), None)
    return x, (jnp.ones(num_agents, bool) if key is None else obs[key].astype(bool))


def critic_values(critic, params, x):
    """Values ``[E, N]`` of the features ``x`` ``[E, N, D]`` of ``E`` environments."""
    return jax.vmap(lambda obs: critic.apply(params["critic"], obs))(x)


def curriculum_params(config: PPOConfig, env_params, iteration):
    """Env params for training update ``iteration``: ``config.curriculum`` applied."""
    if not config.curriculum:
        return env_params
    schedule = config.curriculum
    weight = jnp.clip((iteration / config.num_updates - schedule["begin"])
                      / max(schedule["finish"] - schedule["begin"], 1e-9), 0.0, 1.0)
    value = schedule["start"] + (schedule["end"] - schedule["start"]) * weight
    return env_params.replace(**{schedule["param"]: value})


def comm_coef_at(config: PPOConfig, iteration):
    """The channel cost's coefficient for training update ``iteration``: ``config.comm_coef``
    itself (a Python float: the loss is exactly the one without a warm-up) unless
    ``config.comm_coef_warmup = (begin, finish)``, then ``comm_coef`` times
    ``clip((iteration / num_updates - begin) / (finish - begin), 0, 1)`` (a step at ``begin``
    when ``begin == finish``), the same linear ramp as :func:`curriculum_params`."""
    if not config.comm_coef_warmup:
        return config.comm_coef
    begin, finish = config.comm_coef_warmup
    frac = jnp.asarray(iteration, jnp.float32) / config.num_updates
    if finish > begin:
        weight = jnp.clip((frac - begin) / (finish - begin), 0.0, 1.0)
    else:
        weight = (frac >= begin).astype(jnp.float32)
    return config.comm_coef * weight


def gae(config: PPOConfig, traj: Transition) -> tuple[jax.Array, jax.Array]:
    """Per-agent GAE(lambda) over a rollout: ``(advantages, targets)``, both ``[T, E, N]``.
    A trace is cut where the episode ends (bootstrapping unless terminated) and where the
    agent leaves (never with ``turn_taking``: an agent that is not active only waits)."""
    def back(next_adv, t):
        done, leaves, next_value, reward, terminated, value = t
        cont = 1.0 if config.turn_taking else 1.0 - leaves
        boot = next_value * (1.0 - terminated[:, None]) * cont
        delta = reward + config.gamma * boot - value
        adv = delta + config.gamma * config.gae_lambda * (1.0 - done[:, None]) * cont * next_adv
        return adv, adv
    seq = tuple(x.astype(jnp.float32) for x in (traj.done, traj.leaves, traj.next_value,
                                                 traj.reward, traj.terminated, traj.value))
    _, advantages = jax.lax.scan(back, jnp.zeros_like(traj.value[0]), seq, reverse=True)
    return advantages, advantages + traj.value


def replay(config: PPOConfig, actor, critic, params, batch: Batch, extras: bool = False):
    """The actor and critic of ``params`` on ``batch``'s rollout, its messages replayed from
    the stored comm keys (a GRU actor from the rollout's first carry): ``log_prob``,
    ``entropy``, ``value`` ``[T, E, N]`` (``entropy`` a dict of each head's with
    ``ent_coef_heads``) and the channel cost ``[T, E]``. With ``extras``
    (the pieces of agents/attention.py), also the bottleneck's KL ``[T, E]`` (zeros without
    one); the actor then reads the gradient statistic ``params["aux"]["grad_stat"]`` and,
    where :func:`needs_stat`, its received messages carry a zero perturbation
    ``[T, E, hops, N, D]`` (``D``: the channel's received width) tapped as ``"messages"``
    (``comms.value_and_grad_with_taps`` gives ``dL/dm`` per sample)."""
    stat = params.get("aux", {}).get("grad_stat")
    stat = None if stat is None else jax.lax.stop_gradient(stat)
    perturb = None
    if extras and needs_stat(config):
        T, E, n = batch.traj.alive.shape
        width = math.prod(actor.channel.received_shape(1, config.message_dim))
        perturb = comms.tap("messages", jnp.zeros((T, E, config.hops, n, width), jnp.float32))

    def evaluate_actions(carry, step, delta=None):  # one env
        carry, dists, comm = actor.apply(params["actor"], carry, step.obs, step.alive,
                                         step.reset, jax.random.wrap_key_data(step.comm_key),
                                         True, **({} if not extras else
                                                  {"stat": stat, "perturb": delta}))
        out = (carry, nets.log_prob(dists, step.action),
               nets.entropy(dists, per_head=bool(config.ent_coef_heads)), comm["cost"])
        return (*out, comm.get("kl", jnp.zeros((), jnp.float32))) if extras else out
    seq = batch.traj._replace(**{f: None for f in Transition._fields
                                 if f not in ("obs", "alive", "reset", "comm_key", "action")})
    if config.encoder == "gru":  # truncated BPTT over the segment
        def scan_step(carry, step):
            step, delta = step
            carry, *out = jax.vmap(evaluate_actions)(carry, step, delta)
            return carry, out
        _, outs = jax.lax.scan(scan_step, batch.carry, (seq, perturb))
    else:
        _, *outs = jax.vmap(jax.vmap(evaluate_actions), in_axes=(None, 0, 0))(
            batch.carry, seq, perturb)
    value = jax.vmap(lambda x: critic_values(critic, params, x))(batch.traj.obs)
    log_prob, entropy, cost, *kl = outs
    return (log_prob, entropy, value, cost, *kl)


def needs_stat(config: PPOConfig) -> bool:
    """Whether the learner keeps the running ``||dL/dm_j||`` (gradient-aware attention or a
    gradient budget)."""
    return config.comm == "commnet" and (config.aggregate == "gradient_aware"
                                         or config.gradient_budget_k > 0)


def uses_extras(config: PPOConfig) -> bool:
    """Whether any piece of agents/attention.py is on (else training is exactly as before)."""
    return needs_stat(config) or (config.comm == "commnet" and config.bottleneck != "none")


def init_aux(config: PPOConfig, num_agents: int) -> dict:
    """The non-trained state the pieces of agents/attention.py keep in ``params["aux"]``
    (zero gradients, so the optimiser never moves it): ``grad_stat`` ``[hops, N]`` (ones)
    and, with a bottleneck budget, the Lagrange ``multiplier`` (from ``bottleneck_price``)."""
    aux = {}
    if needs_stat(config):
        aux["grad_stat"] = jnp.ones((config.hops, num_agents), jnp.float32)
    if config.comm == "commnet" and config.bottleneck != "none" and config.bottleneck_budget > 0:
        aux["multiplier"] = jnp.asarray(config.bottleneck_price, jnp.float32)
    return aux


def ppo_loss(config: PPOConfig, batch: Batch, log_prob, entropy, value, comm_cost,
             comm_coef=None):
    """The clipped PPO loss of a policy that gives ``log_prob``, ``entropy``, ``value``
    (``[T, E, N]``) and ``comm_cost`` (``[T, E]``) on ``batch``: ``(total, parts)``, averaged
    over alive agent-steps (the value loss over all agent-steps with ``turn_taking``: a
    waiting agent is still in the game), advantages normalised over them. ``comm_coef``: the cost's
    coefficient (default ``config.comm_coef``; the learner passes :func:`comm_coef_at`).
    ``entropy`` may be a dict of each head's (``[T, E, N]`` each): the bonus is then
    ``sum_h w_h * H_h`` with ``w_h`` from ``config.ent_coef_heads`` (``ent_coef`` for a head
    not named), ``parts["entropy"]`` the heads' sum and ``entropy_<head>`` each one's."""
    comm_coef = config.comm_coef if comm_coef is None else comm_coef
    traj, adv, targets = batch.traj, batch.advantages, batch.targets
    mask = traj.alive.astype(jnp.float32)
    mu = masked_mean(adv, mask)
    adv = (adv - mu) / (jnp.sqrt(masked_mean((adv - mu) ** 2, mask)) + 1e-8)
    ratio = jnp.exp(log_prob - traj.log_prob)
    clipped = jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps)
    pg = masked_mean(-jnp.minimum(ratio * adv, clipped * adv), mask)
    v_clip = traj.value + jnp.clip(value - traj.value, -config.clip_eps, config.clip_eps)
    vf = 0.5 * masked_mean(jnp.maximum((value - targets) ** 2, (v_clip - targets) ** 2),
                           jnp.ones_like(mask) if config.turn_taking else mask)
    heads = {}
    if isinstance(entropy, dict):  # per-head weights (ent_coef_heads)
        heads = {f"entropy_{name}": masked_mean(h, mask) for name, h in entropy.items()}
        bonus = sum(config.ent_coef_heads.get(name, config.ent_coef) * heads[f"entropy_{name}"]
                    for name in entropy)
        entropy = sum(heads.values())
    else:  # one weight on the summed entropy: the original loss
        entropy = masked_mean(entropy, mask)
        bonus = config.ent_coef * entropy
    comm_cost = comm_cost.mean()
    total = pg + config.vf_coef * vf - bonus + comm_coef * comm_cost
    return total, {"loss": total, "pg_loss": pg, "vf_loss": vf, "entropy": entropy,
                   "comm_cost": comm_cost, **heads}


def masked_mean(x, mask):
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def episode_metrics(traj: Transition) -> dict[str, jax.Array]:
    ended = traj.episode_end.astype(jnp.float32)
    count = ended.sum()
    mean = lambda x: jnp.where(count > 0, jnp.sum(x * ended) / jnp.maximum(count, 1), jnp.nan)
    return {"episodes": count, "success": mean(traj.success), "return": mean(traj.team_return),
            "bits_per_message": traj.bits.sum() / jnp.maximum(traj.messages.sum(), 1.0),
            "env_bits_per_step": jnp.mean(traj.env_bits)}


def make_trainer(config: PPOConfig, progress=None) -> Trainer:
    """The trainer of ``config``; ``progress(update, metrics)`` is called from inside the
    compiled loop every ``config.log_every`` updates (seed-mean metrics)."""
    env, env_params = config.environment
    env = dcgenv.LogWrapper(env)
    num_agents, E, T = env.num_agents, config.num_envs, config.num_steps
    actor, critic = make_networks(config, env, env_params)
    opt_steps = config.num_updates * config.update_epochs * config.num_minibatches
    lr = optax.linear_schedule(config.lr, 0.0, opt_steps) if config.anneal_lr else config.lr
    tx = make_optimizer(config, lr)
    carry_width = config.hidden if config.encoder == "gru" else 1
    sparse_env = config.environment[0] if config.obs_embedding else None
    features = jax.vmap(lambda obs: observe(obs, num_agents, config.agent_id, sparse_env))
    message_zeros = nets.message_zeros(actor.channel, actor.hops, config.message_dim)
    extras = uses_extras(config)

    def stat_kwargs(params):  # the gradient statistic the actor reads (agents/attention.py)
        stat = params.get("aux", {}).get("grad_stat")
        return {} if stat is None else {"stat": stat}

    def init(key) -> Runner:
        k_actor, k_critic, k_env, key = jax.random.split(key, 4)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(k_env, E), env_params)
        x, alive = features(obs)
        carry = jnp.zeros((E, num_agents, carry_width))
        params = {"actor": actor.init(k_actor, carry[0], x[0], alive[0], True, k_actor, True),
                  "critic": critic.init(k_critic, x[0])}
        if extras:
            params["aux"] = init_aux(config, num_agents)
        return Runner(params, tx.init(params), env_state, obs, carry, jnp.ones(E, bool), key)

    # COLLECT TRAJECTORIES
    def env_step(runner: Runner, step_key, train_params):  # one step of the E environments
        k_act, k_comm, k_env = jax.random.split(step_key, 3)
        comm_keys = jax.random.split(k_comm, E)
        x, alive = features(runner.obs)

        def act(carry, x, alive, reset, comm_key, act_key):  # one env, all agents
            carry, dists, comm = actor.apply(runner.params["actor"], carry, x, alive, reset,
                                             comm_key, True, **stat_kwargs(runner.params))
            action = nets.sample(dists, act_key)
            return carry, action, nets.log_prob(dists, action), comm
        with jax.named_scope("act"):
            carry, action, log_prob, comm = jax.vmap(act)(
                runner.carry, x, alive, runner.reset, comm_keys, jax.random.split(k_act, E))
            value = critic_values(critic, runner.params, x)
        with jax.named_scope("env"):
            obs, env_state, reward, terminated, truncated, info = jax.vmap(
                env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, E), runner.env_state, action, train_params)
        done = terminated | truncated
        step_info = read_info(info, done)
        x_final, alive_next = features(step_info.final_observation)
        with jax.named_scope("act"):
            next_value = critic_values(critic, runner.params, x_final)
        if config.team_reward:
            reward = jnp.broadcast_to(reward.mean(-1, keepdims=True), reward.shape)
        tr = Transition(
            obs=x, alive=alive, reset=runner.reset, comm_key=jax.random.key_data(comm_keys),
            action=action, log_prob=log_prob, value=value,
            next_value=next_value,
            leaves=alive & ~alive_next, reward=reward, terminated=terminated, done=done,
            bits=comm["bits"], messages=comm["messages"], env_bits=step_info.bits,
            episode_end=info["returned_episode"], success=logged_success(info),
            team_return=info["returned_team_return"])
        sums = {k: comm[k].sum(0) for k in message_zeros}  # over the E environments
        return runner._replace(env_state=env_state, obs=obs, carry=carry, reset=done), tr, sums

    def collect(runner: Runner, iteration=0) -> tuple[Runner, Batch]:
        """A rollout of ``num_steps`` steps, then its advantages, for one seed."""
        carry = runner.carry
        key, k_roll = jax.random.split(runner.key)
        train_params = curriculum_params(config, env_params, iteration)

        def step(state, step_key):  # the learned coding's sums are added up as it goes
            runner, sums = state
            runner, tr, step_sums = env_step(runner, step_key, train_params)
            return (runner, jax.tree.map(jnp.add, sums, step_sums)), tr
        (runner, sums), traj = jax.lax.scan(step, (runner._replace(key=key), message_zeros),
                                            jax.random.split(k_roll, T))
        # CALCULATE ADVANTAGE
        with jax.named_scope("gae"):
            return runner, Batch(carry, traj, *gae(config, traj), sums)

    # UPDATE NETWORK
    def loss(params, batch: Batch, comm_coef=None):
        """The PPO loss of ``params`` on ``batch``: ``(total, parts)``; with a bottleneck,
        plus ``price * KL`` (summed over alive senders, averaged over env-steps; price fixed
        or the Lagrange multiplier) and ``kl_per_message`` in ``parts``. ``comm_coef``: the
        channel cost's coefficient (default ``config.comm_coef``)."""
        if not extras:
            return ppo_loss(config, batch, *replay(config, actor, critic, params, batch),
                            comm_coef)
        *out, kl = replay(config, actor, critic, params, batch, extras=True)
        total, parts = ppo_loss(config, batch, *out, comm_coef)
        if config.bottleneck != "none":
            price = jax.lax.stop_gradient(params["aux"].get(
                "multiplier", jnp.asarray(config.bottleneck_price, jnp.float32)))
            total = total + price * kl.mean()
            parts.update(loss=total, kl_per_message=kl.sum() / jnp.maximum(
                batch.traj.messages.sum(), 1.0), bottleneck_price=price)
        return total, parts

    def gradients(params, mb: Batch, comm_coef=None):
        """``(grads, parts, aux)``: the loss's gradients and the updated non-trained state
        (running gradient statistic from the tapped ``dL/dm``, Lagrange multiplier)."""
        if not extras:
            grads, parts = jax.grad(loss, has_aux=True)(params, mb, comm_coef)
            return grads, parts, None
        aux = dict(params["aux"])
        if needs_stat(config):
            (_, parts), grads, taps = comms.value_and_grad_with_taps(loss, has_aux=True)(
                params, mb, comm_coef)
            g = taps["messages"]  # [T, E, hops, N, D]
            alive = mb.traj.alive
            aux["grad_stat"] = attn.update_gradient_stat(
                aux["grad_stat"], g.reshape(-1, *g.shape[2:]), alive.reshape(-1, alive.shape[-1]))
        else:
            grads, parts = jax.grad(loss, has_aux=True)(params, mb, comm_coef)
        if "multiplier" in aux:
            aux["multiplier"] = attn.update_multiplier(aux["multiplier"],
                                                       parts["kl_per_message"],
                                                       config.bottleneck_budget)
        return grads, parts, aux

    def learn(runner: Runner, batch: Batch, iteration=0) -> tuple[Runner, dict]:
        """``update_epochs`` x ``num_minibatches`` (minibatches of environments) PPO steps
        (the channel cost weighted by :func:`comm_coef_at` of ``iteration``)."""
        key, k_perm = jax.random.split(runner.key)
        comm_coef = comm_coef_at(config, iteration)

        def epoch(state, perm_key):
            groups = jax.random.permutation(perm_key, E).reshape(config.num_minibatches, -1)

            def minibatch(state, idx):
                params, opt_state = state
                with jax.named_scope("minibatch"):
                    mb = Batch(batch.carry[idx],  # the loss reads no comm sums
                               *jax.tree.map(lambda x: x[:, idx], batch[1:4]))
                grads, parts, aux = gradients(params, mb, comm_coef)
                parts["grad_norm"] = global_norm(grads)  # before clipping
                with jax.named_scope("optimizer"):
                    upd, opt_state = tx.update(grads, opt_state, params)
                    params = optax.apply_updates(params, upd)
                    if aux is not None:  # the non-trained state, set (zero grads kept it)
                        params = {**params, "aux": aux}
                    return (params, opt_state), parts
            return jax.lax.scan(minibatch, state, groups)

        (params, opt_state), parts = jax.lax.scan(epoch, (runner.params, runner.opt_state),
                                                  jax.random.split(k_perm, config.update_epochs))
        runner = runner._replace(params=params, opt_state=opt_state, key=key)
        return runner, jax.tree.map(jnp.mean, parts)

    def update(runner: Runner, iteration=0):
        """One PPO update for one seed: rollout, GAE, epochs x minibatches."""
        with jax.named_scope("rollout"):
            runner, batch = collect(runner, iteration)
        with jax.named_scope("learn"):
            runner, losses = learn(runner, batch, iteration)
        metrics = {**episode_metrics(batch.traj),
                   **nets.message_metrics(batch.comm, batch.traj.messages.sum())}
        if config.curriculum:
            name = config.curriculum["param"]
            value = getattr(curriculum_params(config, env_params, iteration), name)
            metrics[name] = jnp.asarray(value, jnp.float32)
        if config.comm_coef_warmup:
            metrics["comm_coef"] = jnp.asarray(comm_coef_at(config, iteration), jnp.float32)
        return runner, {**metrics, **losses}

    init_seeds, run = make_loop(init, update, config.num_seeds, config.log_every, progress)

    def evaluate(params, key, episodes: int):
        """The greedy policy (channel in evaluation mode) for ``episodes`` episodes."""
        def act(carry, x, alive, reset, comm_key):  # one env, all agents
            carry, dists, comm = actor.apply(params["actor"], carry, x, alive, reset, comm_key,
                                             False, **stat_kwargs(params))
            return carry, nets.mode(dists), comm

        def policy(carry, obs, reset, comm_key):  # all envs: (carry, action, comm)
            x, alive = features(obs)
            return jax.vmap(act)(carry, x, alive, reset, jax.random.split(comm_key, episodes))
        return evaluate_greedy(env, env_params, policy, (episodes, num_agents, carry_width), key,
                               message_zeros)

    return Trainer(config, env, env_params, init_seeds, run, evaluate, collect, learn, loss)


def evaluate_greedy(env, env_params, policy, carry_shape, key, message_zeros=None):
    """Play ``carry_shape[0]`` episodes (one per env, the first episode of each counted) with
    ``policy(carry, obs, reset, key) -> (carry, action, comm)``; mean success, team return,
    episode length (env steps; the time limit where an episode did not end sooner), CommNet
    bits per message and the env's own bits per episode, and the learned coding's
    metrics (``nets.message_metrics``) of the ``comm`` entries ``message_zeros`` names."""
    episodes = carry_shape[0]
    k_reset, key = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(k_reset, episodes), env_params)

    def step(state, k):
        obs, env_state, carry, reset, seen, acc = state
        k_comm, k_env = jax.random.split(k)
        carry, action, comm = policy(carry, obs, reset, k_comm)
        obs, env_state, _, terminated, truncated, info = jax.vmap(
            env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, episodes), env_state, action, env_params)
        done = terminated | truncated
        first = info["returned_episode"] & ~seen
        acc = {"success": acc["success"] + jnp.sum(first * logged_success(info)),
               "return": acc["return"] + jnp.sum(first * info["returned_team_return"]),
               "length": acc["length"] + jnp.sum(first * info["returned_episode_length"]),
               "bits": acc["bits"] + jnp.sum(comm["bits"] * ~seen),
               "messages": acc["messages"] + jnp.sum(comm["messages"] * ~seen),
               "env_bits": acc["env_bits"] + jnp.sum(read_info(info, done).bits * ~seen),
               "sums": {k: v + jnp.tensordot((~seen).astype(jnp.float32), comm[k], 1)
                        for k, v in acc["sums"].items()}}
        return (obs, env_state, carry, done, seen | first, acc), None

    acc = dict.fromkeys(("success", "return", "length", "bits", "messages", "env_bits"),
                        jnp.zeros((), jnp.float32))
    acc["sums"] = message_zeros or {}
    state = (obs, env_state, jnp.zeros(carry_shape), jnp.ones(episodes, bool),
             jnp.zeros(episodes, bool), acc)
    (*_, seen, acc), _ = jax.lax.scan(step, state, jax.random.split(
        key, env_params.max_steps_in_episode))
    return {"episodes": seen.sum(), "success": acc["success"] / episodes,
            "return": acc["return"] / episodes, "length": acc["length"] / episodes,
            "bits_per_message": acc["bits"] / jnp.maximum(acc["messages"], 1.0),
            "env_bits_per_episode": acc["env_bits"] / episodes,
            **nets.message_metrics(acc["sums"], acc["messages"])}
