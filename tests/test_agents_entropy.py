"""The learners with learned message coding (config keys ``entropy_coding``, ``prior_low``,
``prior_high``, ``gate``): the config builds the channel or names the key at fault; plain
configs keep their parameter trees; MAPPO and IQL train the channel's parameters with the
agents (tiny sizes) and report the coding metrics; the metrics match a NumPy reference."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import make_trainer
from agents import networks as nets
from baselines.config import ROOT, load
from dcgenv import comms

CODED = ROOT / "configs" / "mappo_commnet_traffic_junction_easy_coded.yaml"
SMALL = ["num_envs=4", "num_steps=5", "num_minibatches=2", "update_epochs=1", "hidden=8",
         "message_dim=3", "num_updates=2", "lr=3e-3", "eval_episodes=3"]
IQL_TINY = dict(num_envs=2, batch_episodes=2, buffer_episodes=8, hidden=8, num_updates=3,
                env_kwargs={"max_steps_in_episode": 5}, epsilon_steps=20, eval_episodes=3,
                message_dim=3, comm_coef=0.01, num_seeds=1, lr=3e-3)
METRICS = ("elias_bits_per_message", "symbol_entropy")


def iql(name="iql_nps_comm", **kw):
    config = load(ROOT / "configs" / f"{name}_predator_prey_magym.yaml")
    return dataclasses.replace(config, **{**IQL_TINY, "channel": "ddcl", **kw})


def channel_entries(tree) -> list[str]:
    """The ``channel*`` keys anywhere in a parameter tree."""
    return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)
            if "channel" in jax.tree_util.keystr(path)]


def test_config_keys_build_the_wrapped_channel():
    ddcl = comms.DDCL(delta=0.2)
    assert load(None).message_channel == ddcl
    coded = load(CODED)
    assert coded.message_channel == comms.EntropyCoded(ddcl, comms.CategoricalPrior(-15, 15))
    assert load(CODED, ["gate=true", "prior_low=-3", "prior_high=4"]).message_channel == (
        comms.Gated(comms.EntropyCoded(ddcl, comms.CategoricalPrior(-3, 4))))
    assert load(None, ["gate=true"]).message_channel == comms.Gated(ddcl)
    fq = load(None, ["channel=fakequant", "channel_kwargs={}", "entropy_coding=true"])
    assert fq.message_channel == comms.EntropyCoded(comms.FakeQuant(),  # its levels 0..255
                                                    comms.CategoricalPrior(0, 255))
    fq4 = load(None, ["channel=fakequant", "channel_kwargs={bits: 4}", "entropy_coding=true",
                      "prior_low=-1", "prior_high=20"])
    assert fq4.message_channel.prior == comms.CategoricalPrior(-1, 20)  # set: kept
    assert "gated entropy-coded ddcl" in load(CODED, ["gate=true"]).describe()


@pytest.mark.parametrize("overrides, names", [
    (["channel=continuous", "channel_kwargs={}"],
     ["config key 'entropy_coding' needs channel ddcl or fakequant, got 'continuous'"]),
    (["prior_low=3", "prior_high=2"], ["'prior_low', 'prior_high'", "low <= high"]),
    (["prior_low=-5000"], ["'prior_low', 'prior_high'", "4096"]),
    (["prior_low=1.5"], ["'prior_low'", "integer"]),
    (["entropy_coding=maybe"], ["'entropy_coding'", "True or False"]),
    (["gate=1"], ["'gate'", "True or False"]),
    (["comm=none"], ["'entropy_coding'", "needs comm commnet", "got 'none'"]),
    (["entropy_coding=false", "gate=true", "comm=none"], ["'gate'", "needs comm commnet"]),
])
def test_bad_coding_keys_name_the_key_and_what_is_allowed(overrides, names):
    with pytest.raises(ValueError) as err:
        load(CODED, overrides)
    for name in names:
        assert name in str(err.value)


def test_iql_coding_keys_checked_too():
    with pytest.raises(ValueError, match="'gate'.*needs comm message"):
        iql(comm="none", gate=True)
    with pytest.raises(ValueError, match="'entropy_coding' needs channel ddcl or fakequant, got "
                                         "'gumbel'"):
        iql(channel="gumbel", entropy_coding=True)


def test_parameter_trees_get_channel_entries_only_for_learnable_channels():
    """Plain configs: no ``channel*`` entry at all (same trees as before the keys existed);
    coded ones: one per hop (MAPPO) or one shared set, without an agent axis (IQL NPS)."""
    shapes = lambda config: jax.eval_shape(make_trainer(config).init,
                                           jax.random.key(0)).runners.params
    assert channel_entries(shapes(load(None, SMALL))) == []
    for name in ("iql_ps_comm", "iql_nps_comm"):
        assert channel_entries(shapes(iql(name))) == []
    mappo = shapes(load(CODED, SMALL + ["hops=2", "gate=true"]))["actor"]["params"]
    assert sorted(k for k in mappo if k.startswith("channel")) == ["channel_0", "channel_1"]
    assert mappo["channel_0"]["inner"]["logits"].shape == (1, 1, 3, 32)  # seed, [1, d], 31+1
    config = iql("iql_nps_comm", entropy_coding=True)
    nps = shapes(config)
    assert nps["channel"]["logits"].shape == (1, 1, 3, 32)  # seed axis only, no agent axis
    num_agents = config.environment[0].num_agents
    assert nps["q"]["params"]["embedding"]["kernel"].shape[:2] == (1, num_agents)


def _check_metrics(metrics, config, gated):
    size = config.message_channel.channel.prior.size if gated else (
        config.message_channel.prior.size)
    for m in metrics:
        m = jax.device_get(m)
        for name in METRICS + (("sent_fraction",) if gated else ()):
            assert name in m and np.all(np.isfinite(m[name])), name
        assert np.all(m["symbol_entropy"] >= 0)
        assert np.all(m["symbol_entropy"] <= math.log2(size) * config.message_dim + 1e-5)
        assert ("sent_fraction" in m) == gated
        if gated:
            assert np.all((0 <= m["sent_fraction"]) & (m["sent_fraction"] <= 1))
        else:  # every sent symbol costs at least one Elias bit
            assert np.all(m["elias_bits_per_message"] >= config.message_dim)


def test_mappo_trains_the_channel_with_the_agents():
    """The coded config; the gated path trains in the IQL test (its sums: the NumPy test)."""
    gate = False
    config = load(CODED, SMALL)
    trainer = make_trainer(config)
    state = jax.jit(trainer.init)(jax.random.key(0))
    after, metrics = jax.jit(trainer.run, static_argnums=1)(state, 2)
    before = state.runners.params["actor"]["params"]["channel_0"]
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), before,
                         after.runners.params["actor"]["params"]["channel_0"])
    assert all(d > 0 for d in jax.tree.leaves(moved)), moved  # the gradient reached them
    ev = jax.jit(trainer.evaluate, static_argnums=2)(
        jax.tree.map(lambda x: x[0], after.runners.params), jax.random.key(1), 3)
    _check_metrics([metrics, ev], config, gate)
    assert np.all(np.asarray(metrics["bits_per_message"]) > 0)


def test_iql_nps_trains_the_shared_gated_channel():
    """NPS, entropy-coded and gated (the payload that arrives is narrower than what the message
    network emits): the one shared channel set learns (prior and flag), and the target network
    carries it too."""
    gate = True
    config = iql("iql_nps_comm", entropy_coding=True, gate=gate)
    trainer = make_trainer(config)
    state = jax.jit(trainer.init)(jax.random.key(0))
    after, metrics = jax.jit(trainer.run, static_argnums=1)(state, 2)
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), state.runners.params["channel"],
                         after.runners.params["channel"])
    assert all(d > 0 for d in jax.tree.leaves(moved)), moved
    assert jax.tree.structure(after.runners.target) == jax.tree.structure(after.runners.params)
    ev = jax.jit(trainer.evaluate, static_argnums=2)(
        jax.tree.map(lambda x: x[0], after.runners.params), jax.random.key(1), 3)
    _check_metrics([metrics, ev], config, gate)


def test_coding_metrics_match_a_numpy_reference():
    """``message_sums`` over a few sends (alive weights, and under Gated only the sent tokens)
    then ``message_metrics``: the Elias count and the plug-in entropy of the symbols per
    element, against NumPy on the same symbols."""
    prior = comms.CategoricalPrior(-2, 2)  # small: escapes happen
    n, dim, steps = 5, 3, 4
    rng = np.random.default_rng(0)
    for gated in (False, True):
        channel = comms.EntropyCoded(comms.DDCL(0.2), prior)
        channel = comms.Gated(channel) if gated else channel
        params = channel.init(jax.random.key(0), 1, dim)
        sums, symbols, flags, elias = nets.message_zeros(channel, 1, dim), [], [], 0.0
        for t in range(steps):
            z = rng.normal(0, 0.6, (n, *channel.message_shape(1, dim))).astype(np.float32)
            alive = rng.random(n) < 0.7
            send = lambda k, m, c=channel, p=params: c.send(k, m, train=True, params=p)
            _, stats = jax.vmap(send)(jax.random.split(jax.random.key(t), n), z)
            step = nets.message_sums(channel, stats, jnp.asarray(alive, jnp.float32))
            sums = jax.tree.map(lambda a, b: a + (b[None] if b.ndim == 2 else b), sums, step)
            sent = alive & (np.asarray(stats["mask"])[:, 0] > 0 if gated else True)
            symbols.append(np.asarray(stats["symbols"]).reshape(n, dim)[sent])
            flags.append(alive.sum())
            elias += float(np.sum(np.asarray(stats["elias_bits"]).reshape(n)[sent]))
        messages = float(sum(flags))
        out = jax.device_get(nets.message_metrics(sums, messages))
        symbols = np.concatenate(symbols)
        assert len(symbols) > 3 and np.any(np.abs(symbols) > 2)
        categories = np.where(np.abs(symbols) <= 2, symbols + 2, prior.size - 1)
        want = 0.0
        for e in range(dim):
            p = np.bincount(categories[:, e].astype(int), minlength=prior.size) / len(symbols)
            want -= np.sum(p[p > 0] * np.log2(p[p > 0]))
        np.testing.assert_allclose(out["symbol_entropy"], want, rtol=1e-5)
        np.testing.assert_allclose(out["elias_bits_per_message"],
                                   (elias + gated * messages) / messages, rtol=1e-5)
        if gated:
            np.testing.assert_allclose(out["sent_fraction"], len(symbols) / messages)
        else:
            assert "sent_fraction" not in out
