"""The learner's lambda warm-up (config key ``comm_coef_warmup``): the ramp's values, its
validation, the default path (no warm-up) giving exactly the loss without the key, and a PPO
update weighting the channel cost by the ramp of the update it is told."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import make_trainer
from agents.config import Config, PPOConfig
from agents.mappo import Batch, comm_coef_at, ppo_loss

TINY = {"env": "GridWorldGoal-v0", "env_kwargs": {"channel": "silent"}, "comm": "commnet",
        "hops": 1, "aggregate": "mean", "channel": "ddcl", "channel_kwargs": {"delta": 0.2},
        "message_dim": 4, "hidden": 16, "num_envs": 4, "num_steps": 4, "num_minibatches": 1,
        "update_epochs": 1, "num_updates": 4, "comm_coef": 0.5}


def tiny(**overrides) -> PPOConfig:
    return Config.from_dict({**TINY, **overrides})


def test_ramp_values_and_the_default_coefficient():
    lam = 0.5
    cfg = tiny(comm_coef_warmup=[0.25, 0.75])  # updates 1 .. 3 of 4
    assert cfg.comm_coef_warmup == (0.25, 0.75)
    got = [float(comm_coef_at(cfg, i)) for i in range(6)]
    assert got == pytest.approx([0.0, 0.0, 0.5 * lam, lam, lam, lam])
    traced = jax.jit(lambda i: comm_coef_at(cfg, i))(jnp.int32(2))  # inside the loop: traced
    assert float(traced) == pytest.approx(0.5 * lam)
    step = tiny(comm_coef_warmup=(0.5, 0.5))  # begin == finish: a step, no division by zero
    assert [float(comm_coef_at(step, i)) for i in range(4)] == [0.0, 0.0, lam, lam]
    plain = tiny()
    assert plain.comm_coef_warmup == ()
    assert comm_coef_at(plain, jnp.int32(3)) is plain.comm_coef  # the Python float itself
    assert tiny(comm_coef_warmup=None).comm_coef_warmup == ()
    assert tiny(comm_coef_warmup=["0", "1e-1"]).comm_coef_warmup == (0.0, 0.1)  # YAML 1.1
    assert Config.from_dict(cfg.to_dict()) == cfg  # a checkpoint's JSON round trip


@pytest.mark.parametrize("bad", [[0.7, 0.3], [0.3], [0.2, 0.4, 0.6], [-0.1, 0.5],
                                 [0.5, 1.5], [0.1, float("nan")], ["x", 0.5], [True, 1.0],
                                 0.3, "0.3-0.6"])
def test_bad_warmup_is_refused_naming_key_value_and_range(bad):
    with pytest.raises(ValueError) as err:
        tiny(comm_coef_warmup=bad)
    text = str(err.value)
    assert "comm_coef_warmup" in text and "0 <= begin <= finish <= 1" in text
    assert repr(bad) in text


def test_iql_does_not_take_the_key():
    with pytest.raises(ValueError, match="comm_coef_warmup.*not used by algorithm iql"):
        Config.from_dict({"algorithm": "iql", "env": "GridWorldGoal-v0",
                          "comm_coef_warmup": [0.3, 0.6]})


def test_default_loss_is_the_loss_without_the_key():
    """``ppo_loss`` without ``comm_coef`` adds ``config.comm_coef * cost`` to the same parts,
    bit for bit; an explicit coefficient changes only that term."""
    cfg = tiny(comm_coef=0.25)
    T, E, N = 3, 4, 2
    k = iter(jax.random.split(jax.random.key(0), 8))
    normal = lambda shape: jax.random.normal(next(k), shape)
    traj = dict.fromkeys(("obs", "reset", "comm_key", "action", "next_value", "leaves",
                          "reward", "terminated", "done", "bits", "messages", "env_bits",
                          "episode_end", "success", "team_return"))
    from agents.mappo import Transition
    traj = Transition(**{**traj, "alive": jnp.arange(T * E * N).reshape(T, E, N) % 3 > 0,
                         "log_prob": normal((T, E, N)), "value": normal((T, E, N))})
    batch = Batch(None, traj, normal((T, E, N)), normal((T, E, N)))
    log_prob, entropy, value = normal((T, E, N)), jnp.abs(normal((T, E, N))), normal((T, E, N))
    cost = jnp.abs(normal((T, E))) * 10
    total, parts = ppo_loss(cfg, batch, log_prob, entropy, value, cost)
    today = (parts["pg_loss"] + cfg.vf_coef * parts["vf_loss"] - cfg.ent_coef * parts["entropy"]
             + cfg.comm_coef * cost.mean())
    assert float(total) == float(today)
    assert float(parts["comm_cost"]) == float(cost.mean())
    explicit, _ = ppo_loss(cfg, batch, log_prob, entropy, value, cost, cfg.comm_coef)
    assert float(explicit) == float(total)
    none, _ = ppo_loss(cfg, batch, log_prob, entropy, value, cost, 0.0)
    assert float(total - none) == pytest.approx(0.25 * float(cost.mean()), rel=1e-5)


def test_update_prices_the_channel_by_the_ramp_of_its_iteration():
    """One PPO update (one epoch, one minibatch: its loss parts are those of the parameters it
    starts from) of a warm-up config, told updates 0, 2 and 4 of 4 on the same batch: its loss
    is the same but for ``ramp * comm_coef * comm_cost``, and the price moves the update."""
    warm = make_trainer(tiny(comm_coef_warmup=[0.25, 0.75]))
    runner, batch = jax.jit(lambda key: warm.collect(
        jax.tree.map(lambda a: a[0], warm.init(key).runners)))(jax.random.key(0))
    assert float(jnp.sum(batch.traj.bits)) > 0  # messages were sent, so they cost
    learn = jax.jit(warm.learn)
    (r0, l0), (r2, l2), (r4, l4) = (learn(runner, batch, i) for i in (0, 2, 4))
    cost = float(l0["comm_cost"])
    assert cost > 0 and float(l2["comm_cost"]) == float(l4["comm_cost"]) == cost
    lam = warm.config.comm_coef
    for losses, weight in ((l2, 0.5), (l4, 1.0)):
        assert float(losses["loss"] - l0["loss"]) == pytest.approx(weight * lam * cost, rel=1e-4)
        assert float(losses["pg_loss"]) == float(l0["pg_loss"])
    flat = lambda r: np.concatenate([np.ravel(x) for x in jax.tree.leaves(r.params)])
    assert np.abs(flat(r4) - flat(r0)).max() > 1e-5  # the price changes the gradient step


def test_gridworld_warmup_variants_load_with_their_ramp():
    """The GridWorld row's warm-up configs (``python -m baselines.gridworld_ddcl --variant``)
    load at every budget, each with a valid ramp for the learner; an unknown variant is
    refused naming the allowed ones."""
    from baselines import gridworld_ddcl as gw

    for variant in gw.VARIANTS:
        for budget in ("smoke", "cpu", "full"):
            row, cfg = gw.load_variant(variant, budget)
            assert row == f"gridworld_ddcl_{variant}" and len(cfg.warmup) == 2
            agent = Config.from_dict({**cfg.agent, "comm_coef_warmup": list(cfg.warmup)})
            assert 0 < agent.comm_coef_warmup[1] < 1 and cfg.lambdas
            assert agent.comm_coef_senders == ((1.0, 0.0) if variant == "speaker" else ())
    with pytest.raises(ValueError, match="unknown variant 'cold'; allowed: warmup"):
        gw.load_variant("cold", "cpu")


def test_sender_weights_price_each_senders_cost_and_are_validated():
    """``comm_coef_senders`` weighs each sender's channel cost in the actor's sum: the
    weighted costs add up to the plain one, scale with their weight, and ``[1, 1]`` is the
    plain sum; the bits are never weighted. Bad weights are refused naming the key."""
    from agents import networks as nets
    from agents.mappo import make_networks

    cfg = tiny()
    env, env_params = cfg.environment
    obs = jax.random.normal(jax.random.key(0), (2, 7))
    alive, key = jnp.ones(2, bool), jax.random.key(1)
    plain_actor, _ = make_networks(cfg, env, env_params)
    params = plain_actor.init(key, jnp.zeros((2, 16)), obs, alive, False, key, True)

    def comm(weights):
        actor = plain_actor.clone(cost_weights=weights)
        return actor.apply(params, jnp.zeros((2, 16)), obs, alive, False, key, True)[2]

    plain, speaker, listener = comm(()), comm((1.0, 0.0)), comm((0.0, 1.0))
    assert float(speaker["cost"]) > 0 and float(listener["cost"]) > 0
    np.testing.assert_allclose(speaker["cost"] + listener["cost"], plain["cost"], rtol=1e-6)
    np.testing.assert_allclose(comm((3.0, 0.0))["cost"], 3 * speaker["cost"], rtol=1e-6)
    assert float(comm((1.0, 1.0))["cost"]) == float(plain["cost"])
    assert float(speaker["bits"]) == float(plain["bits"])
    assert make_networks(tiny(comm_coef_senders=[1, 0]), env, env_params)[0].cost_weights == (
        1.0, 0.0)
    assert nets.Actor.cost_weights == ()  # the default: the plain sum
    for bad in ([1.0], [1.0, -1.0], [1.0, float("inf")], "1,0", [True, 0.0]):
        with pytest.raises(ValueError, match="comm_coef_senders"):
            tiny(comm_coef_senders=bad)
    with pytest.raises(ValueError, match="comm_coef_senders.*comm: commnet"):
        tiny(comm="none", comm_coef_senders=[1, 0])


def test_cost_without_the_trunk_trains_the_projection_and_channel_only():
    """``comm_cost_trunk: false``: the same forward values (actions, bits, cost), but the
    cost's gradient reaches the message projection and the entropy-coded channel's prior and
    is exactly zero on every other parameter (the encoder, the aggregation, the heads); with
    the default it reaches the encoder too. Refused where there is no CommNet channel alone."""
    from agents.mappo import make_networks

    cfg = tiny(entropy_coding=True)
    env, env_params = cfg.environment
    obs = jax.random.normal(jax.random.key(0), (2, 7))
    alive, key = jnp.ones(2, bool), jax.random.key(1)
    plain, _ = make_networks(cfg, env, env_params)
    head, _ = make_networks(tiny(entropy_coding=True, comm_cost_trunk=False), env, env_params)
    assert plain.cost_into_trunk and not head.cost_into_trunk
    params = plain.init(key, jnp.zeros((2, 16)), obs, alive, False, key, True)
    run = lambda actor, p: actor.apply(p, jnp.zeros((2, 16)), obs, alive, False, key, True)
    a, b = run(plain, params), run(head, params)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert float(a[2]["cost"]) > 0
    grad = lambda actor: jax.tree_util.tree_flatten_with_path(
        jax.grad(lambda p: run(actor, p)[2]["cost"])(params))[0]
    moved = lambda grads: {path[1].key for path, g in grads if float(jnp.abs(g).max()) > 0}
    # Dense_0: the hop's message projection (the first layer after the encoder MLP_0)
    assert params["params"]["Dense_0"]["kernel"].shape == (16, 4)
    assert moved(grad(head)) == {"Dense_0", "channel_0"}
    assert {"MLP_0", "Dense_0", "channel_0"} <= moved(grad(plain))  # the encoder moves too
    with pytest.raises(ValueError, match="comm_cost_trunk.*comm: commnet"):
        tiny(comm="none", comm_cost_trunk=False)
    with pytest.raises(ValueError, match="comm_cost_trunk.*bottleneck: none"):
        tiny(bottleneck="variational", comm_cost_trunk=False)
