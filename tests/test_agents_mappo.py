"""A few PPO updates of every (algorithm, environment family) config, at tiny sizes: they run,
their metrics are finite, and each update lowers the PPO loss on the batch it learned from."""

from pathlib import Path

import jax
import numpy as np
import pytest

from agents import make_train, make_trainer
from baselines.config import load

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SMALL = ["num_envs=4", "num_steps=6", "num_minibatches=2", "update_epochs=2", "hidden=16",
         "num_updates=3", "lr=3e-3"]
# The default config itself (MAPPO + CommNet/MLP + DDCL, Traffic Junction) runs in
# tests/test_baselines_train.py; here its recurrent, IC3Net-gated, two-hop variant.
CASES = {
    "traffic_junction_commnet_gru_gated": ("mappo_commnet_traffic_junction_easy.yaml",
                                               ["encoder=gru", "aggregate=gated", "hops=2"]),
    "predator_prey_ippo": ("ippo_predator_prey_easy.yaml", []),
    "gridworld_message_head": ("mappo_gridworld_goal.yaml", []),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_updates_run_and_lower_the_loss_on_their_batch(case):
    name, extra = CASES[case]
    trainer = make_trainer(load(CONFIGS / name, SMALL + extra))

    @jax.jit
    def updates(key):
        runner = jax.tree.map(lambda a: a[0], trainer.init(key).runners)

        def one(runner, _):
            runner, batch = trainer.collect(runner)
            before = trainer.loss(runner.params, batch)[0]
            runner, losses = trainer.learn(runner, batch)
            return runner, (before, trainer.loss(runner.params, batch)[0], losses, batch.traj)
        return jax.lax.scan(one, runner, None, length=3)[1]

    before, after, losses, tr = jax.device_get(updates(jax.random.key(0)))
    assert np.all(np.isfinite(before)) and np.all(np.isfinite(after))
    assert all(np.all(np.isfinite(v)) for v in losses.values())
    assert np.all(after < before), (before, after)
    assert tr.alive.any()  # the masked losses saw live agents
    if "commnet" in case:
        assert np.all(tr.bits[tr.messages > 0] > 0)  # DDCL messages cost bits
    if "gridworld" in case:
        assert tr.action["message"].shape[-1] == 4 and np.std(tr.action["message"]) > 0
        assert np.any(tr.env_bits > 0)  # the env's own messages, read from info["bits"]
        params = jax.tree.map(lambda x: x[0],
                              jax.jit(trainer.init)(jax.random.key(1)).runners.params)
        ev = jax.jit(trainer.evaluate, static_argnums=2)(params, jax.random.key(2), 4)
        assert ev["episodes"] == 4 and ev["env_bits_per_episode"] > 0  # greedy Gaussian head


def test_make_train_compiles_whole_vmaps_seeds_and_reports_progress():
    cfg = load(CONFIGS / "mappo_predator_prey_easy.yaml", SMALL + ["num_seeds=2",
                                                                  "num_updates=2", "log_every=1"])
    calls = []
    train = make_train(cfg, progress=lambda i, m: calls.append((int(i), float(m["loss"]))))
    state, metrics = jax.jit(train)(jax.random.key(0))
    jax.effects_barrier()
    assert int(state.update) == 2 and metrics["loss"].shape == (2,)
    assert [c[0] for c in calls] == [1, 2]  # from inside the compiled loop, every update
    np.testing.assert_allclose([c[1] for c in calls], metrics["loss"], rtol=1e-6)
    kernel = jax.tree.leaves(state.runners.params["actor"])[0]
    assert kernel.shape[0] == 2 and not np.array_equal(kernel[0], kernel[1])  # 2 seeds


def _random_batch(seed=0, T=5, E=3, N=2):
    from agents.mappo import Batch, Transition

    rng = np.random.default_rng(seed)
    normal = lambda *shape: rng.normal(size=shape).astype(np.float32)
    coin = lambda *shape, p=0.3: rng.random(shape) < p
    terminated, truncated = coin(T, E, p=0.2), coin(T, E, p=0.2)
    traj = Transition(
        obs=normal(T, E, N, 4), alive=coin(T, E, N, p=0.8), reset=coin(T, E),
        comm_key=np.zeros((T, E, 2), np.uint32), action=np.zeros((T, E, N), int),
        log_prob=normal(T, E, N), value=normal(T, E, N), next_value=normal(T, E, N),
        leaves=coin(T, E, N, p=0.1), reward=normal(T, E, N),
        terminated=terminated & ~truncated, done=terminated | truncated, bits=normal(T, E),
        messages=normal(T, E), env_bits=normal(T, E), episode_end=coin(T, E),
        success=coin(T, E), team_return=normal(T, E))
    return Batch(np.zeros((E, N, 1), np.float32), traj, normal(T, E, N), normal(T, E, N)), normal


def test_gae_matches_a_reference_loop():
    """Per-agent GAE, cut where the episode ends (bootstrapping unless terminated) and where
    the agent leaves, against a plain Python loop."""
    from agents.mappo import gae

    config = load(CONFIGS / "mappo_predator_prey_easy.yaml", ["gamma=0.9", "gae_lambda=0.8"])
    batch, _ = _random_batch()
    tr = batch.traj
    adv, targets = jax.device_get(gae(config, tr))
    expected, next_adv = np.zeros_like(tr.value), np.zeros_like(tr.value[0])
    for t in reversed(range(len(tr.value))):
        cont = 1.0 - tr.leaves[t]
        boot = tr.next_value[t] * (1.0 - tr.terminated[t][:, None]) * cont
        delta = tr.reward[t] + 0.9 * boot - tr.value[t]
        next_adv = delta + 0.9 * 0.8 * (1.0 - tr.done[t][:, None]) * cont * next_adv
        expected[t] = next_adv
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(targets, expected + tr.value, rtol=1e-5, atol=1e-6)


def test_ppo_loss_matches_a_reference():
    """The clipped PPO loss over alive agent-steps (advantages normalised over them) against
    NumPy."""
    from agents.mappo import ppo_loss

    config = load(CONFIGS / "mappo_predator_prey_easy.yaml", [])
    batch, normal = _random_batch(1)
    log_prob, entropy, value, cost = normal(5, 3, 2), normal(5, 3, 2), normal(5, 3, 2), normal(5, 3)
    total, parts = jax.device_get(ppo_loss(config, batch, log_prob, entropy, value, cost))
    tr, m = batch.traj, batch.traj.alive
    adv = batch.advantages[m]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    ratio = np.exp(log_prob[m] - tr.log_prob[m])
    eps = config.clip_eps
    pg = -np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv).mean()
    v, old, y = value[m], tr.value[m], batch.targets[m]
    vf = 0.5 * np.maximum((v - y) ** 2, (old + np.clip(v - old, -eps, eps) - y) ** 2).mean()
    want = (pg + config.vf_coef * vf - config.ent_coef * entropy[m].mean()
            + config.comm_coef * cost.mean())
    np.testing.assert_allclose([parts["pg_loss"], parts["vf_loss"], total], [pg, vf, want],
                               rtol=1e-4, atol=1e-6)


def test_greedy_evaluation_reports_episode_length():
    """Predators that stay never reach the prey: every episode runs to the time limit. One
    predator on a 2 x 2 grid stepping onto the prey's cell ends its episode at step 1 or 2."""
    import jax.numpy as jnp

    import dcgenv
    from agents.mappo import evaluate_greedy
    from dcgenv.envs.predator_prey import PredatorPrey

    comm = {"bits": jnp.zeros(()), "messages": jnp.zeros(())}

    def stay(carry, obs, reset, key):
        return carry, jnp.full(carry.shape[:2], 4), comm

    env, params = dcgenv.make("PredatorPrey-easy-v0")
    env, params = dcgenv.LogWrapper(env), params.replace(max_steps_in_episode=7)
    out = evaluate_greedy(env, params, stay, (5, env.num_agents, 1), jax.random.PRNGKey(0))
    assert out["episodes"] == 5 and out["length"] == 7.0 and out["success"] == 0.0

    tiny = dcgenv.LogWrapper(PredatorPrey(dim=2, num_agents=1, max_steps=5))

    def chase(carry, obs, reset, key):  # toward the prey: right / down / left / up in turn
        return carry + 1, (carry[..., 0].astype(jnp.int32) % 4), comm

    out = evaluate_greedy(tiny, tiny.default_params, chase, (16, 1, 1), jax.random.PRNGKey(1))
    assert 1.0 <= float(out["length"]) < 5.0 and out["success"] > 0


NEGOTIATION = {"algorithm": "mappo", "env": "Negotiation-v0", "comm": "none", "hidden": 16,
               "num_envs": 4, "num_steps": 6, "num_minibatches": 1, "ent_coef": 0.01}


def test_ent_coef_heads_weighs_each_heads_entropy():
    """With ``ent_coef_heads`` the entropy bonus is ``sum_h w_h * H_h`` (``ent_coef`` for a
    head not named), each ``H_h`` the head's entropy averaged over alive agent-steps; the rest
    of the loss is the default one's. At initialisation the utterance Gaussian (log-std 0,
    6 x 10 elements) has entropy ``60 * log(2 pi e) / 2`` exactly, the near-uniform accept
    and proposal heads about ``log 2`` and ``3 log 6``."""
    from agents.config import Config

    weights = {"accept": 0.05, "utterance": 0.001}  # proposal: ent_coef (0.01)
    plain = make_trainer(Config.from_dict(NEGOTIATION))
    heads = make_trainer(Config.from_dict({**NEGOTIATION, "ent_coef_heads": weights}))
    runner = jax.tree.map(lambda a: a[0], jax.jit(plain.init)(jax.random.key(0)).runners)
    _, batch = jax.jit(plain.collect)(runner)
    total0, parts0 = jax.device_get(jax.jit(plain.loss)(runner.params, batch))
    total, parts = jax.device_get(jax.jit(heads.loss)(runner.params, batch))
    h = {k: float(parts[f"entropy_{k}"]) for k in ("accept", "proposal", "utterance")}
    assert "entropy_accept" not in parts0  # the default logs the sum only
    np.testing.assert_allclose(h["utterance"], 30 * np.log(2 * np.pi * np.e), rtol=1e-5)
    np.testing.assert_allclose([h["accept"], h["proposal"]], [np.log(2), 3 * np.log(6)],
                               rtol=1e-3)
    np.testing.assert_allclose(parts["entropy"], parts0["entropy"], rtol=1e-5)
    bonus = 0.05 * h["accept"] + 0.01 * h["proposal"] + 0.001 * h["utterance"]
    np.testing.assert_allclose(total, total0 + 0.01 * parts0["entropy"] - bonus, rtol=1e-5,
                               atol=1e-6)
    # each named weight counts: raising one head's weight lowers the loss by dw * H_h
    for name in weights:
        more = make_trainer(Config.from_dict({**NEGOTIATION, "ent_coef_heads": {
            **weights, name: weights[name] + 1.0}}))
        np.testing.assert_allclose(jax.device_get(more.loss(runner.params, batch)[0]),
                                   total - h[name], rtol=1e-5, atol=1e-5)


def test_ppo_loss_with_head_entropies_matches_a_reference():
    """``ppo_loss`` given a dict of per-head entropies: the bonus against NumPy, and equal
    weights on every head give the default loss on their sum."""
    from agents.config import Config
    from agents.mappo import ppo_loss

    config = Config.from_dict({**NEGOTIATION, "ent_coef_heads": {
        "accept": 0.5, "proposal": 0.25, "utterance": 0.0}})
    batch, normal = _random_batch(2)
    ent = {k: normal(5, 3, 2) for k in ("accept", "proposal", "utterance")}
    log_prob, value, cost = normal(5, 3, 2), normal(5, 3, 2), normal(5, 3)
    total, parts = jax.device_get(ppo_loss(config, batch, log_prob, ent, value, cost))
    m = batch.traj.alive
    bonus = 0.5 * ent["accept"][m].mean() + 0.25 * ent["proposal"][m].mean()
    rest = parts["pg_loss"] + config.vf_coef * parts["vf_loss"] + config.comm_coef * cost.mean()
    np.testing.assert_allclose(total, rest - bonus, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(parts["entropy_accept"], ent["accept"][m].mean(), rtol=1e-5)
    same = Config.from_dict({**NEGOTIATION, "ent_coef_heads": dict.fromkeys(ent, 0.01)})
    summed = sum(ent.values())
    want, _ = ppo_loss(Config.from_dict(NEGOTIATION), batch, log_prob, summed, value, cost)
    got, _ = ppo_loss(same, batch, log_prob, ent, value, cost)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_ent_coef_heads_is_validated():
    from agents.config import Config

    with pytest.raises(ValueError, match="ent_coef_heads.*'talk'.*accept, proposal, utterance"):
        Config.from_dict({**NEGOTIATION, "ent_coef_heads": {"talk": 0.1}})
    with pytest.raises(ValueError, match="ent_coef_heads.*-0.1.*>= 0"):
        Config.from_dict({**NEGOTIATION, "ent_coef_heads": {"accept": -0.1}})
    with pytest.raises(ValueError, match="ent_coef_heads.*one head: use ent_coef"):
        Config.from_dict({"algorithm": "mappo", "env": "PredatorPrey-easy-v0",
                          "ent_coef_heads": {"move": 0.1}})
    config = Config.from_dict({**NEGOTIATION, "ent_coef_heads": {"utterance": "1e-3"}})
    assert config.ent_coef_heads == {"utterance": 0.001}  # YAML's 1e-3 string, as a float


@pytest.mark.parametrize("env, expected", [("Negotiation-v0", True), ("Rubinstein-v0", True),
                                           ("Referential-v0", True), ("Kyle-v0", True),
                                           ("TrafficJunction-easy-v0", False),
                                           ("PredatorPrey-easy-v0", False)])
def test_turn_taking_defaults_to_the_env_s_turn_based(env, expected):
    """Unset, ``turn_taking`` is the env's ``turn_based``: a learner on a turn-taking game
    credits a waiting agent without being told; set, it is kept; bad values are named."""
    from agents.config import Config

    base = {"algorithm": "mappo", "env": env, "comm": "none"}
    assert Config.from_dict(base).turn_taking is expected
    assert Config.from_dict({**base, "turn_taking": not expected}).turn_taking is (not expected)
    with pytest.raises(ValueError, match="'turn_taking'.*true, false or null"):
        Config.from_dict({**base, "turn_taking": "yes"})


def test_turn_taking_credits_the_proposal_that_was_accepted():
    """Agent 0 proposes on step 0 (then waits: not active), agent 1 accepts on step 1 and both
    receive 1. By default agent 0 "leaves" after step 0: its proposal's advantage is its
    reward there, 0. With ``turn_taking`` its trace runs on: ``gamma * lambda * 1``; the value
    loss then counts every agent-step."""
    from agents.config import Config
    from agents.mappo import gae, ppo_loss

    batch, _ = _random_batch(3, T=2, E=1, N=2)
    zeros = np.zeros((2, 1, 2), np.float32)
    traj = batch.traj._replace(
        alive=np.array([[[True, False]], [[False, True]]]),
        leaves=np.array([[[True, False]], [[False, False]]]), value=zeros, next_value=zeros,
        reward=np.array([[[0.0, 0.0]], [[1.0, 1.0]]], np.float32),
        terminated=np.array([[False], [True]]), done=np.array([[False], [True]]))
    values = {**NEGOTIATION, "gamma": 0.9, "gae_lambda": 0.8}
    plain, turns = (Config.from_dict({**values, "turn_taking": t}) for t in (False, True))
    np.testing.assert_allclose(jax.device_get(gae(plain, traj)[0])[:, 0],
                               [[0.0, 0.72], [1.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(jax.device_get(gae(turns, traj)[0])[:, 0],
                               [[0.72, 0.72], [1.0, 1.0]], rtol=1e-6)
    # the value loss: over alive agent-steps by default, over all of them with turn_taking
    batch = batch._replace(traj=traj, targets=np.array([[[2.0, 0.0]], [[0.0, 0.0]]],
                                                       np.float32))
    flat = np.zeros((2, 1, 2), np.float32)
    args = (batch, flat, flat, flat, np.zeros((2, 1), np.float32))
    vf = [float(ppo_loss(c, *args)[1]["vf_loss"]) for c in (plain, turns)]
    # targets 2 at (step 0, agent 0), alive there: 0.5 * 4 / 2 by default, / 4 with turns
    np.testing.assert_allclose(vf, [1.0, 0.5], rtol=1e-6)
