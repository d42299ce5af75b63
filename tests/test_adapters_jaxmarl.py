"""The JaxMARL view: dict conversions against dcgenv, and a few updates of a loop written the way
JaxMARL's IPPO script is (``baselines/IPPO/ippo_ff_mpe.py``: batchify / unbatchify over agent
dicts, JaxMARL's own ``LogWrapper``, ``info`` reshaped to ``[num_actors]``), with only the
``make`` call changed."""

from __future__ import annotations

from typing import NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax.training.train_state import TrainState
from jaxmarl.wrappers.baselines import LogWrapper, MPELogWrapper

import dcgenv
from dcgenv.adapters.jaxmarl import make


def test_dicts_match_dcgenv_step_for_step_with_auto_reset():
    env, params = dcgenv.make("TrafficJunction-easy-v0")
    view = make("TrafficJunction-easy-v0")
    key = jax.random.key(0)
    obs, state = view.reset(key)
    ref_obs, ref_state = env.reset(key, params)
    assert list(obs) == view.agents == list(env.agents)
    space = view.observation_space("car_0")
    assert space.shape == (env.obs_size + 1,) and view.action_space("car_0").n == 2
    for t in range(params.max_steps_in_episode + 2):
        k = jax.random.fold_in(key, t)
        actions = {a: jnp.int32((t + i) % 2) for i, a in enumerate(view.agents)}
        obs, state, rewards, dones, infos = view.step(k, state, actions)
        ref_obs, ref_state, reward, term, trunc, info = env.step(
            k, ref_state, jnp.arange(t, t + 5) % 2, params)
        for i, a in enumerate(view.agents):
            flat = jnp.concatenate([ref_obs["obs"][i], ref_obs["alive"][i, None]])
            np.testing.assert_array_equal(obs[a], flat)  # obs leaves, then the alive flag
            assert bool(space.contains(obs[a]))
            assert rewards[a] == reward[i] and dones[a] == (term | trunc)
        assert bool(dones["__all__"]) == (t == params.max_steps_in_episode - 1)
        assert infos["collisions"].shape == (5,) and infos["truncated"][0] == trunc
        assert "final_observation" not in infos
    assert int(state.time) == 2  # auto-reset: two steps into the next episode


def test_jaxmarl_log_wrapper_logs_dcgenv_returns_and_mpe_wrapper_scales_them():
    """docs/adapters.md's advice: JaxMARL's ``LogWrapper`` reports each agent's return as
    dcgenv's ``LogWrapper`` does; ``MPELogWrapper`` multiplies it by the number of agents."""
    env, params = dcgenv.make("TrafficJunction-easy-v0")
    ours, view = dcgenv.LogWrapper(env), make("TrafficJunction-easy-v0")
    logged = {}
    for wrapper in (LogWrapper, MPELogWrapper):
        wrapped, key = wrapper(view), jax.random.key(3)
        _, state = wrapped.reset(key)
        _, ref_state = ours.reset(key, params)
        for t in range(params.max_steps_in_episode):
            k = jax.random.fold_in(key, t)
            actions = {a: jnp.int32((t * i) % 2) for i, a in enumerate(view.agents)}
            _, state, _, _, info = wrapped.step(k, state, actions)
            _, ref_state, _, _, _, ref_info = ours.step(k, ref_state, jnp.arange(5) * t % 2,
                                                        params)
        assert bool(info["returned_episode"][0]) and bool(ref_info["returned_episode"])
        logged[wrapper.__name__] = np.asarray(info["returned_episode_returns"])
        expected = np.asarray(ref_info["returned_episode_returns"])
    assert np.any(expected != 0)
    np.testing.assert_allclose(logged["LogWrapper"], expected, rtol=1e-6)
    np.testing.assert_allclose(logged["MPELogWrapper"], 5 * expected, rtol=1e-6)


def test_dict_actions_reset_state_avail_actions_and_errors():
    view = make("GridWorldGoal-v0", flatten_obs=False)
    key = jax.random.key(1)
    obs, state = view.reset(key)
    assert set(obs["listener"]) == {"role", "goal", "position", "message", "has_message"}
    actions = {a: {"move": jnp.int32(0), "message": jnp.ones(4)} for a in view.agents}
    obs, state, *_ = view.step(key, state, actions)
    np.testing.assert_allclose(obs["listener"]["message"], 1.0)
    # reset_state replaces the auto-reset when the episode ends
    _, start = view.reset(jax.random.key(2))
    last = state.replace(time=jnp.int32(49))
    obs, state, _, dones, _ = view.step(key, last, actions, start)
    assert bool(dones["__all__"])
    np.testing.assert_array_equal(state.pos, start.pos)
    np.testing.assert_array_equal(obs["listener"]["position"], start.pos)
    with pytest.raises(ValueError, match="Discrete"):
        view.get_avail_actions(state)
    tj = make("TrafficJunction-easy-v0")
    avail = tj.get_avail_actions(tj.reset(key)[1])
    assert set(avail) == set(tj.agents) and avail["car_0"].tolist() == [True, True]
    with pytest.raises(ValueError, match=r"missing \['listener'\]"):
        view.step(key, state, {"speaker": actions["speaker"]})
    with pytest.raises(ValueError, match="agents"):
        view.observation_space("car_0")


# ---- a few updates of an IPPO loop in the structure of JaxMARL's script ----------------------

class ActorCritic(nn.Module):
    action_dim: int

    @nn.compact
    def __call__(self, x):
        hidden = nn.tanh(nn.Dense(32)(x))
        pi = distrax.Categorical(logits=nn.Dense(self.action_dim)(hidden))
        return pi, jnp.squeeze(nn.Dense(1)(hidden), -1)


class Transition(NamedTuple):
    done: jnp.ndarray
    action: jnp.ndarray
    value: jnp.ndarray
    reward: jnp.ndarray
    log_prob: jnp.ndarray
    obs: jnp.ndarray
    info: dict


def batchify(x: dict, agent_list, num_actors):
    return jnp.stack([x[a] for a in agent_list]).reshape((num_actors, -1))


def unbatchify(x: jnp.ndarray, agent_list, num_envs, num_actors):
    x = x.reshape((num_actors, num_envs, -1))
    return {a: x[i] for i, a in enumerate(agent_list)}


CONFIG = {"ENV_NAME": "TrafficJunction-easy-v0", "ENV_KWARGS": {}, "NUM_ENVS": 4,
          "NUM_STEPS": 25, "NUM_UPDATES": 3, "UPDATE_EPOCHS": 2, "NUM_MINIBATCHES": 2,
          "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01,
          "VF_COEF": 0.5, "LR": 3e-3}


def make_train(config):
    env = make(config["ENV_NAME"], **config["ENV_KWARGS"])  # the only change: jaxmarl.make
    config["NUM_ACTORS"] = env.num_agents * config["NUM_ENVS"]
    env = LogWrapper(env)

    def train(rng):
        network = ActorCritic(env.action_space(env.agents[0]).n)
        rng, _rng = jax.random.split(rng)
        params = network.init(_rng, jnp.zeros(env.observation_space(env.agents[0]).shape))
        train_state = TrainState.create(apply_fn=network.apply, params=params,
                                        tx=optax.adam(config["LR"]))
        rng, _rng = jax.random.split(rng)
        obsv, env_state = jax.vmap(env.reset)(jax.random.split(_rng, config["NUM_ENVS"]))

        def _update_step(runner_state, unused):
            def _env_step(runner_state, unused):
                train_state, env_state, last_obs, rng = runner_state
                obs_batch = batchify(last_obs, env.agents, config["NUM_ACTORS"])
                rng, _rng = jax.random.split(rng)
                pi, value = network.apply(train_state.params, obs_batch)
                action = pi.sample(seed=_rng)
                env_act = unbatchify(action, env.agents, config["NUM_ENVS"], env.num_agents)
                rng, _rng = jax.random.split(rng)
                obsv, env_state, reward, done, info = jax.vmap(env.step)(
                    jax.random.split(_rng, config["NUM_ENVS"]), env_state, env_act)
                info = jax.tree.map(lambda x: x.reshape(config["NUM_ACTORS"]), info)
                transition = Transition(
                    batchify(done, env.agents, config["NUM_ACTORS"]).squeeze(), action, value,
                    batchify(reward, env.agents, config["NUM_ACTORS"]).squeeze(),
                    pi.log_prob(action), obs_batch, info)
                return (train_state, env_state, obsv, rng), transition

            runner_state, traj = jax.lax.scan(_env_step, runner_state, None,
                                              config["NUM_STEPS"])
            train_state, env_state, last_obs, rng = runner_state
            _, last_val = network.apply(train_state.params,
                                        batchify(last_obs, env.agents, config["NUM_ACTORS"]))

            def _gae(carry, tr):
                gae, next_value = carry
                delta = tr.reward + config["GAMMA"] * next_value * (1 - tr.done) - tr.value
                gae = delta + config["GAMMA"] * config["GAE_LAMBDA"] * (1 - tr.done) * gae
                return (gae, tr.value), gae

            _, advantages = jax.lax.scan(_gae, (jnp.zeros_like(last_val), last_val), traj,
                                         reverse=True)
            targets = advantages + traj.value

            def _loss_fn(params, traj, gae, targets):
                pi, value = network.apply(params, traj.obs)
                ratio = jnp.exp(pi.log_prob(traj.action) - traj.log_prob)
                gae = (gae - gae.mean()) / (gae.std() + 1e-8)
                clipped = jnp.clip(ratio, 1 - config["CLIP_EPS"], 1 + config["CLIP_EPS"])
                actor = -jnp.minimum(ratio * gae, clipped * gae).mean()
                critic = 0.5 * jnp.square(value - targets).mean()
                return actor + config["VF_COEF"] * critic - config["ENT_COEF"] * pi.entropy().mean()

            def _update_epoch(update_state, unused):
                train_state, rng = update_state
                rng, _rng = jax.random.split(rng)
                batch_size = config["NUM_STEPS"] * config["NUM_ACTORS"]
                batch = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]),
                                     (traj, advantages, targets))
                perm = jax.random.permutation(_rng, batch_size)
                minibatches = jax.tree.map(lambda x: jnp.take(x, perm, axis=0).reshape(
                    [config["NUM_MINIBATCHES"], -1] + list(x.shape[1:])), batch)

                def _update_minibatch(train_state, mb):
                    loss, grads = jax.value_and_grad(_loss_fn)(train_state.params, *mb)
                    return train_state.apply_gradients(grads=grads), loss

                train_state, losses = jax.lax.scan(_update_minibatch, train_state, minibatches)
                return (train_state, rng), losses

            (train_state, rng), losses = jax.lax.scan(_update_epoch, (train_state, rng), None,
                                                      config["UPDATE_EPOCHS"])
            metric = {**jax.tree.map(lambda x: x.mean(), traj.info), "loss": losses.mean(),
                      "episodes": traj.info["returned_episode"].sum() / env.num_agents}
            return (train_state, env_state, last_obs, rng), metric

        rng, _rng = jax.random.split(rng)
        runner_state, metric = jax.lax.scan(_update_step, (train_state, env_state, obsv, _rng),
                                            None, config["NUM_UPDATES"])
        return {"runner_state": runner_state, "metrics": metric}

    return train


def test_jaxmarl_ippo_loop_runs_a_few_updates():
    out = jax.jit(make_train(dict(CONFIG)))(jax.random.key(0))
    m = jax.device_get(out["metrics"])
    assert m["loss"].shape == (CONFIG["NUM_UPDATES"],) and np.isfinite(m["loss"]).all()
    # 4 envs x 75 steps with 20-step episodes: 12 episodes end, seen by JaxMARL's LogWrapper
    assert m["episodes"].sum() == 12
    returns = m["returned_episode_returns"]
    assert (returns < 0).all()  # time penalties (and crashes) of finished episodes
    trained = out["runner_state"][0]
    assert int(trained.step) == CONFIG["NUM_UPDATES"] * CONFIG["UPDATE_EPOCHS"] * 2
