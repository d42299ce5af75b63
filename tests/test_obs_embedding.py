"""``obs_embedding``: the networks embed the environments' sparse observations (``sparse_obs``:
the nonzero entries of the one-hot observation) instead of the one-hot itself. The coordinates
rebuild the one-hot observation bit for bit, and with the same parameters the embedded actor
and critic compute what the one-hot ones compute: they see exactly the same information."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from agents import make_trainer
from agents import networks as nets
from agents.config import Config, PPOConfig
from baselines.config import load

IDS = ["TrafficJunction-easy-v0", "TrafficJunction-medium-v0", "TrafficJunction-hard-v0",
       "PredatorPrey-easy-v0", "PredatorPrey-medium-v0", "PredatorPrey-hard-v0"]


@functools.cache
def random_obs(env_id, obs_mode="index", steps=12, picks=(3, 7, 11)):
    """Observations (agent-stacked, stacked over ``picks``) of a random-action rollout; Traffic
    Junction with a high add_rate so that cells are shared (counts > 1) and slots free up."""
    env, params = dcgenv.make(env_id, obs_mode=obs_mode)
    if env_id.startswith("TrafficJunction"):
        params = params.replace(add_rate=0.6)
    n_actions = env.action_space(params).n

    @jax.jit
    def rollout(key):
        obs, state = env.reset(key, params)

        def step(carry, key):
            state, _ = carry
            k_act, k_env = jax.random.split(key)
            action = jax.random.randint(k_act, (env.num_agents,), 0, n_actions)
            obs, state, *_ = env.step(k_env, state, action, params)
            return (state, obs), obs
        return jax.lax.scan(step, (state, obs), jax.random.split(key, steps))[1]
    obs = rollout(jax.random.key(len(env_id)))
    return env, jax.tree.map(lambda x: x[np.array(picks)], obs)


def dense_of(env, index, value):
    """Scatter-add of the coordinates: ``[..., sparse_width]``."""
    def one(i, v):
        return jnp.zeros(env.sparse_width, jnp.float32).at[i].add(v)
    return jnp.vectorize(one, signature="(k),(k)->(d)")(index, value)


MEDIUM = ["TrafficJunction-medium-v0", "PredatorPrey-medium-v0"]


@pytest.mark.parametrize("env_id,obs_mode", [(i, "index") for i in IDS]
                         + [(i, m) for i in MEDIUM for m in ("uint8", "onehot")])
def test_sparse_coordinates_rebuild_the_onehot_observation(env_id, obs_mode):
    env, obs = random_obs(env_id, obs_mode)
    index, value = jax.jit(env.sparse_obs)(obs)  # batch axes [picks, N]
    onehot = jax.vmap(lambda o: nets.flatten_obs(env.expand_obs(o), env.num_agents))(obs)
    assert index.dtype == jnp.int32 and value.dtype == jnp.float32
    assert index.shape == value.shape and index.shape[:2] == onehot.shape[:2]
    assert onehot.shape[-1] == env.sparse_width
    assert int(index.min()) >= 0 and int(index.max()) < env.sparse_width
    np.testing.assert_array_equal(np.asarray(dense_of(env, index, value)), np.asarray(onehot))
    # the states are informative: agents present, and (where the env allows) shared cells
    alive = next(v for k, v in obs.items() if k in ("alive", "active"))
    assert np.asarray(alive).any()
    if env_id.startswith("TrafficJunction-medium"):
        assert np.asarray(onehot).max() >= 2  # a car count of 2: a crash in view


@pytest.mark.parametrize("env_id", MEDIUM)
def test_sparse_features_agent_id_and_centralised_input_match_the_dense_ones(env_id):
    env, obs = random_obs(env_id)
    one = jax.tree.map(lambda x: x[-1], obs)
    n = env.num_agents
    x = nets.sparse_features(env, one, n, agent_id=True)
    dense = nets.flatten_obs(env.expand_obs(one), n, agent_id=True)
    assert x.shape == dense.shape
    np.testing.assert_array_equal(np.asarray(x.dense()), np.asarray(dense))
    joint = jnp.concatenate([jnp.broadcast_to(dense.reshape(1, -1), (n, dense.size)), dense], -1)
    np.testing.assert_array_equal(np.asarray(nets.centralise(x).dense()), np.asarray(joint))


def networks(env, params, encoder="mlp"):
    actor = nets.Actor(nets.head_spec(env.action_space(params)), hidden=32, encoder=encoder,
                       hops=1, aggregate="attention")
    return actor, nets.Critic(32, centralised=True), nets.Critic(32, centralised=False)


@pytest.mark.parametrize("env_id,encoder", [(i, "mlp") for i in IDS if "hard" not in i]
                         + [(i, "gru") for i in MEDIUM])
def test_embedded_networks_equal_the_onehot_networks(env_id, encoder):
    env, obs = random_obs(env_id)
    _, env_params = dcgenv.make(env_id)
    n = env.num_agents
    mask = "alive" if env_id.startswith("Traffic") else "active"
    actor, central, local = networks(env, env_params, encoder)
    k_init, k_comm = jax.random.split(jax.random.key(1))
    carry0 = jnp.zeros((n, 32))
    first = jax.tree.map(lambda x: x[0], obs)
    dense0 = nets.flatten_obs(env.expand_obs(first), n, True)
    sparse0 = nets.sparse_features(env, first, n, True)
    params = {"actor": actor.init(k_init, carry0, dense0, first[mask], True, k_comm, True),
              "central": central.init(k_init, dense0), "local": local.init(k_init, dense0)}
    # the embedded networks have the same parameter trees, initialised identically
    same = {"actor": actor.init(k_init, carry0, sparse0, first[mask], True, k_comm, True),
            "central": central.init(k_init, sparse0), "local": local.init(k_init, sparse0)}
    jax.tree.map(np.testing.assert_array_equal, params, same)

    def outputs(x, alive, carry):
        carry, dists, _ = actor.apply(params["actor"], carry, x, alive, False, k_comm, True)
        return (carry, dists[None].logits, central.apply(params["central"], x),
                local.apply(params["local"], x))

    carry_d = carry_s = carry0 + 0.1
    for t in range(len(jax.tree.leaves(obs)[0])):
        step = jax.tree.map(lambda x, t=t: x[t], obs)
        dense = nets.flatten_obs(env.expand_obs(step), n, True)
        sparse = nets.sparse_features(env, step, n, True)
        out_d = outputs(dense, step[mask], carry_d)
        out_s = outputs(sparse, step[mask], carry_s)
        carry_d, carry_s = out_d[0], out_s[0]
        for a, b in zip(out_d, out_s, strict=True):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5)
        # and the comparison can fail: the critic reads every agent's entries
        cut = nets.SparseObs(sparse.index, sparse.value.at[-1, 0].add(1.0), sparse.width)
        assert not np.allclose(np.asarray(central.apply(params["central"], cut)),
                               np.asarray(out_d[2]), rtol=1e-5, atol=1e-5)


SMALL = ["num_envs=4", "num_steps=5", "num_minibatches=2", "update_epochs=2", "hidden=16",
         "num_updates=2", "comm=none", "hops=0"]


def test_mappo_trains_on_embedded_index_observations():
    config = load(None, SMALL + ["env=TrafficJunction-medium-v0", "env_kwargs.obs_mode=index",
                                 "obs_embedding=true"])
    trainer = make_trainer(config)

    @jax.jit
    def train(key):
        runner = jax.tree.map(lambda a: a[0], trainer.init(key).runners)

        def one(runner, _):
            runner, batch = trainer.collect(runner)
            runner, losses = trainer.learn(runner, batch)
            return runner, (losses, batch.traj.obs)
        return jax.lax.scan(one, runner, None, length=config.num_updates)[1]
    losses, stored = train(jax.random.key(0))
    assert isinstance(stored, nets.SparseObs)  # the rollout holds the sparse features
    for name, value in losses.items():
        assert np.isfinite(np.asarray(value)).all(), name
    assert np.abs(np.asarray(losses["vf_loss"])).sum() > 0


def test_obs_embedding_config_errors():
    with pytest.raises(ValueError, match="config key 'obs_embedding'.*no sparse observation"):
        PPOConfig(env="GridWorldGoal-v0", obs_embedding=True)
    with pytest.raises(ValueError, match="'obs_embedding' is not used by algorithm iql"):
        Config.from_dict({"algorithm": "iql", "env": "PredatorPrey-magym-v0",
                          "obs_embedding": True})
    assert PPOConfig(env="PredatorPrey-hard-v0", env_kwargs={"obs_mode": "index"},
                     obs_embedding=True).obs_embedding
