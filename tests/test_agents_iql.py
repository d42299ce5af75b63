"""IQL: the episode buffer returns what was stored, the target network refreshes on schedule,
NPS gradients stay with their agent, PS and NPS agree where they must, each of the paper's
four configs trains (a few iterations, tiny sizes) on PredatorPrey-magym-v0, the previous
action reaches the Q-network the same way when acting and in the loss, unavailable
actions (a JaxMARL env's padded ones) are never played nor bootstrapped from, and the keys
that follow the authors' code (time limit, per-agent clip, own message, optimiser epsilon,
learn start, evaluation during training) do what they say and leave the defaults as before."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import make_trainer
from agents.iql import make_buffer
from baselines.config import ROOT, load

TINY = dict(num_envs=2, batch_episodes=2, buffer_episodes=8, hidden=8, num_updates=3,
            env_kwargs={"max_steps_in_episode": 6}, epsilon_steps=20, eval_episodes=4,
            checkpoint_every=3, log_every=1, num_seeds=1)
CONFIGS = ["iql_ps_comm", "iql_ps_nocomm", "iql_nps_comm", "iql_nps_nocomm"]


def tiny(name="iql_nps_comm", **kw):
    """``configs/<name>_predator_prey_magym.yaml`` shrunk; ``<grid name>_authors``:
    ``configs/<grid name>_predator_prey_magym_authors.yaml``."""
    base, authors = name.removesuffix("_authors"), name.endswith("_authors")
    config = load(ROOT / "configs" / f"{base}_predator_prey_magym{'_authors' * authors}.yaml")
    return dataclasses.replace(config, **{**TINY, **kw})


@settings(max_examples=25, deadline=None)
@given(adds=st.lists(st.integers(1, 3), min_size=1, max_size=8), seed=st.integers(0, 2**16),
       start=st.sampled_from([0, 1, 3]))
def test_buffer_returns_what_was_stored(adds, seed, start):
    """Items are tagged with their insertion number; sampling starts once ``start`` items are
    stored (0: the batch of 4; ``learn_start``); every sample is a stored item, whole and
    unaltered, from the newest ``capacity`` ones, drawn with replacement (a batch of 4 from 1
    to 3 stored ones too); with enough samples all of them show up."""
    capacity = 5
    buffer = make_buffer(capacity, 4, start)
    item = lambda tag: {"obs": jnp.full((3, 2), tag, jnp.float32),
                        "action": jnp.full((3,), tag, jnp.int32)}
    state, count = buffer.init(item(0)), 0
    for k in adds:
        state = buffer.add(state, jax.tree.map(lambda *x: jnp.stack(x),
                                               *[item(count + j + 1) for j in range(k)]))
        count += k
    kept = set(range(max(1, count - capacity + 1), count + 1))
    assert bool(buffer.can_sample(state)) == (count >= (start or 4))
    if count < (start or 4):
        return
    sample = jax.vmap(buffer.sample, in_axes=(None, 0))(
        state, jax.random.split(jax.random.key(seed), 64)).experience
    obs, action = np.asarray(sample["obs"]), np.asarray(sample["action"])
    assert obs.shape == (64, 4, 3, 2) and action.shape == (64, 4, 3)
    tags = action[..., 0]
    np.testing.assert_array_equal(obs, np.broadcast_to(tags[..., None, None], obs.shape))
    np.testing.assert_array_equal(action, np.broadcast_to(tags[..., None], action.shape))
    assert set(tags.ravel().tolist()) == kept


def _batch(trainer, key, episodes=3):
    config = trainer.config  # jitted: one compile each, not one per operation
    params = jax.jit(trainer.init)(key).runners.params
    params = jax.tree.map(lambda x: x[0], params)  # seed 0
    batch, _ = jax.jit(trainer.collect, static_argnums=3)(params, key, 1.0, episodes)
    assert batch.filled.any() and config.num_seeds == 1
    return params, batch


def test_nps_gradient_of_agent_i_reaches_only_agent_i_message_network():
    trainer = make_trainer(tiny("iql_nps_comm"))
    params, batch = _batch(trainer, jax.random.key(1))
    n = trainer.env.num_agents
    # jac[part] leaves: [loss of agent i, parameters of agent j, ...]
    jac = jax.jit(jax.jacrev(lambda p: trainer.loss(p, params, batch, jax.random.key(2))[1][
        "per_agent"]))(params)
    for part in ("message", "q"):
        norms = sum(jnp.sum(jnp.abs(x).reshape(n, n, -1), -1) for x in jax.tree.leaves(jac[part]))
        assert (jnp.diag(norms) > 0).all(), part
        np.testing.assert_array_equal(np.asarray(norms) * (1 - np.eye(n)), 0.0)


@pytest.mark.parametrize("comm", ["comm", "nocomm"])
def test_ps_and_nps_agree_with_identical_parameters_and_data(comm):
    """NPS with every agent's parameters set to the PS parameters, on the same episodes: same
    Q-values and losses; the NPS Q-network gradients summed over agents equal the PS gradient
    (PS shares one set), and agent i's NPS gradient is PS's gradient of agent i's loss. The
    message networks differ exactly where they should: PS lets a receiver's loss reach the
    senders, NPS detaches incoming messages, so their gradients must differ; and under PS,
    agent 0's loss, with agent 0's own message cut, still trains the message network (through
    the messages the others sent it): the shared-gradient scheme."""
    ps, nps = make_trainer(tiny(f"iql_ps_{comm}")), make_trainer(tiny(f"iql_nps_{comm}"))
    params, batch = _batch(ps, jax.random.key(3))
    n = ps.env.num_agents
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), params)
    key = jax.random.key(4)
    (loss_ps, parts_ps), g_ps = jax.jit(jax.value_and_grad(ps.loss, has_aux=True))(
        params, params, batch, key)
    (loss_nps, parts_nps), g_nps = jax.jit(jax.value_and_grad(nps.loss, has_aux=True))(
        stacked, stacked, batch, key)
    np.testing.assert_allclose(loss_ps, loss_nps, rtol=1e-6)
    np.testing.assert_allclose(parts_ps["per_agent"], parts_nps["per_agent"], rtol=1e-6)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7)
    for a, b in zip(jax.tree.leaves(g_ps["q"]), jax.tree.leaves(g_nps["q"]), strict=True):
        close(a, b.sum(0))
    jac = jax.jit(jax.jacrev(lambda p: ps.loss(p, params, batch, key)[1]["per_agent"] / n))(
        params)  # leaves [agent i's loss, ...]: PS gradient of each agent's share
    for a, b in zip(jax.tree.leaves(jac["q"]), jax.tree.leaves(g_nps["q"]), strict=True):
        close(a, b)
    if comm == "comm":
        assert sum(float(jnp.abs(x[0]).sum()) for x in jax.tree.leaves(jac["message"])) > 0
        diff = max(float(jnp.max(jnp.abs(a - b.sum(0)))) for a, b in zip(
            jax.tree.leaves(g_ps["message"]), jax.tree.leaves(g_nps["message"]), strict=True))
        assert diff > 1e-6


def _assert_trained(config, state, metrics, ev):
    """4 iterations of 2 episodes each (``tiny(name, num_updates=4, batch_episodes=4)``);
    learning from the first (``learn_start`` 1 or 2: the authors' configs) or the second."""
    assert int(state.update) == 4 and int(state.runners.episodes[0]) == 8
    first = 2 >= (config.learn_start or config.batch_episodes)
    assert np.isfinite(metrics["loss"][0]) == first and np.isfinite(metrics["loss"][1:]).all()
    assert (np.diff(metrics["env_steps"]) > 0).all() and metrics["epsilon"][-1] < 1.0
    assert np.all(metrics["length"] <= 6)
    assert 0 <= ev["success"] <= 1 and np.isfinite(ev["return"])
    assert (ev["bits_per_message"] > 0) == (config.comm == "message")


# one PS and one NPS config; iql_nps_comm trains through the train command
# (test_iql_through_the_train_...), and the smoke budget of the iql_magym row trains all four
# *_authors configs end to end (tests/test_iql_rows.py)
@pytest.mark.parametrize("name", ["iql_ps_comm", "iql_nps_nocomm"])
def test_paper_configs_train_a_few_iterations(name):
    """One iteration at a time, 2 episodes each, ``target_every`` 4: the target equals the
    online network right after an iteration that crosses a multiple of ``target_every``
    episodes, and lags otherwise."""
    trainer = make_trainer(tiny(name, num_updates=4, batch_episodes=4, target_every=4))
    state = jax.jit(trainer.init)(jax.random.key(0))
    run = jax.jit(trainer.run, static_argnums=1)
    first = lambda t: np.asarray(jax.tree.leaves(t)[0])
    metrics = []
    for i in range(1, 5):
        before = first(state.runners.target)
        state, m = run(state, 1)
        metrics.append(jax.device_get(m))
        online, target = first(state.runners.params), first(state.runners.target)
        assert int(state.runners.episodes[0]) == 2 * i
        if (2 * i) % 4 == 0:
            np.testing.assert_array_equal(target, online)
        else:
            np.testing.assert_array_equal(target, before)
            if i > 1:  # learning has started (buffer of 4 episodes): online moved on
                assert not np.array_equal(target, online)
    ev = jax.device_get(jax.jit(trainer.evaluate, static_argnums=2)(
        jax.tree.map(lambda x: x[0], state.runners.params), jax.random.key(1), 4))
    metrics = jax.tree.map(lambda *x: np.concatenate(x), *metrics)
    _assert_trained(trainer.config, state, metrics, ev)


def test_bad_iql_configs_raise():
    with pytest.raises(ValueError, match=r"'comm'.*\['message', 'none'\]"):
        tiny(comm="commnet")
    with pytest.raises(ValueError, match="exceeds buffer_episodes"):
        tiny(batch_episodes=16)
    with pytest.raises(ValueError, match="epsilon_end <= epsilon_start"):
        tiny(epsilon_end=0.5, epsilon_start=0.1)
    with pytest.raises(ValueError, match="'parameter_sharing' is not used by algorithm mappo"):
        load(None, ["parameter_sharing=false"])
    with pytest.raises(ValueError, match="optimizer"):
        tiny(optimizer="sgd")
    with pytest.raises(ValueError, match="'num_devices'.*allowed: 1"):
        tiny(num_devices=2)
    with pytest.raises(ValueError, match="Discrete action space"):
        tiny(env="GridWorldGoal-v0", env_kwargs={})


def test_iql_config_rejects_the_keys_only_ppo_reads():
    """A key IQL would ignore (the configs once set ``encoder: gru``) stops with the keys IQL
    takes."""
    path = ROOT / "configs" / "iql_ps_comm_predator_prey_magym.yaml"
    for key in ("encoder=gru", "hops=1", "aggregate=mean", "num_steps=20", "ent_coef=0.1"):
        with pytest.raises(ValueError) as err:
            load(path, [key])
        name = key.partition("=")[0]
        message = str(err.value)
        assert f"'{name}' is not used by algorithm iql (only by ippo, mappo)" in message
        assert "iql takes:" in message and "epsilon_steps" in message


def test_iql_through_the_train_command_resumes_bit_for_bit(tmp_path):
    """The shared CLI machinery (config, orbax checkpoints with the replay buffer, resume,
    restored evaluation) works for IQL as for MAPPO; and iql_nps_comm trains (as the other
    paper configs do in test_paper_configs_train_a_few_iterations)."""
    from baselines import checkpoint, progress
    from baselines.evaluate import evaluate_checkpoint
    from baselines.train import train

    config = tiny("iql_nps_comm", num_updates=4, checkpoint_every=2, batch_episodes=4)
    results_a, state_a = train(config, tmp_path / "a", show_progress=False)
    train(config, tmp_path / "b", stop_after=2, show_progress=False)
    results_b, state_b = train(config, tmp_path / "b", resume=True, show_progress=False)
    for a, b in zip(jax.tree.leaves((state_a.runners.params, state_a.runners.buffer)),
                    jax.tree.leaves((state_b.runners.params, state_b.runners.buffer)),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert results_a["eval"] == results_b["eval"] and results_a["env_steps"] > 0
    rows = progress.read_rows(tmp_path / "a" / "metrics.jsonl")
    assert rows == progress.read_rows(tmp_path / "b" / "metrics.jsonl") and len(rows) == 4
    metrics = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    _assert_trained(config, state_a, metrics, results_a["eval"]["mean"])
    assert evaluate_checkpoint(tmp_path / "a", episodes=4)["mean"] == results_a["eval"]["mean"]
    # a restored state has a fresh one's types, weak types included (else resuming compiles
    # the update again): flashbax's weakly typed buffer index is typed strongly at init
    fresh = jax.eval_shape(make_trainer(config).init, jax.random.key(config.seed))
    restored, _ = checkpoint.restore(tmp_path / "b", config, fresh)
    assert jax.tree.map(jax.typeof, restored) == jax.tree.map(jax.typeof, fresh)


def test_iql_grid_merges_results_files_and_run_directories(tmp_path, capsys):
    from baselines import iql_grid

    def fake_run(name, successes, returns):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        per_seed = [{"success": s, "return": r} for s, r in zip(successes, returns, strict=True)]
        (run / "results.json").write_text(json.dumps(
            {"eval": {"per_seed": per_seed}, "env_steps": 1000, "train_s": 1.0}))
        (run / "metrics.jsonl").write_text("".join(
            json.dumps({"update": i + 1, "env_steps": 100 * (i + 1), "return": float(i)}) + "\n"
            for i in range(20)))
        return run

    runs = [fake_run(name, [0.1, 0.2, 0.3], [-1.0, -2.0, -3.0])
            for name in ("iql_nps_comm", "iql_ps_comm")]
    saved = tmp_path / "saved.json"
    iql_grid.main(["--merge", str(runs[0]), "--results", str(saved),
                   "--figure", str(tmp_path / "a.png")])
    out = tmp_path / "grid.json"
    rows = iql_grid.main(["--merge", str(saved), str(runs[1]), "--results", str(out),
                          "--figure", str(tmp_path / "grid.png")])
    assert [r["config"] for r in rows] == ["iql_ps_comm", "iql_nps_comm"]  # the grid's order
    assert rows[0]["train_return_last10pct"] == 18.5  # mean of the last 2 of 20 rows
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(rows))
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert "0.200 ± 0.100" in capsys.readouterr().out
    (tmp_path / "iql_ps_nocomm").mkdir()
    with pytest.raises(FileNotFoundError, match="results.json"):
        iql_grid.main(["--merge", str(tmp_path / "iql_ps_nocomm"), "--results", str(out)])
    with pytest.raises(ValueError, match="named after its config"):
        iql_grid.main(["--merge", str(tmp_path / "runs"), "--results", str(out)])


def test_iql_grid_setup_picks_the_authors_configs():
    from baselines import iql_grid
    from baselines.config import load

    for name in iql_grid.GRID:
        grid, authors = (load(iql_grid.config_path(name, s)) for s in ("grid", "authors"))
        assert (grid.last_action, authors.last_action) == (False, True)
        assert (grid.double_q, authors.double_q) == (True, False)
        assert grid.parameter_sharing == authors.parameter_sharing
    with pytest.raises(SystemExit):
        iql_grid.main(["--setup", "paper"])


def test_nps_init_completes_where_xla_cpu_hung():
    """The authors' NPS comm config at hidden 32 with 3 seeds: its initial parameters and
    target, vmapped over agents in one program, never arrived from jax 0.10.2's CPU runtime
    (agents/iql.py, ``Agents.init``). Run in a subprocess, so that a hang fails the test
    instead of stalling the suite."""
    code = ("import jax\n"
            "from baselines.config import load\n"
            "from agents import make_trainer\n"
            "tr = make_trainer(load('configs/iql_nps_comm_predator_prey_magym_authors.yaml',"
            " ['hidden=32']))\n"
            "pick = lambda s: (s.runners.params, s.runners.target)\n"
            "init = jax.jit(lambda k: pick(tr.init(k)))\n"
            "p, t = jax.block_until_ready(init(jax.random.key(0)))\n"
            "print(jax.tree.leaves(p['q'])[0].shape[:2])\n")
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                             text=True, timeout=240, check=True).stdout
    except subprocess.TimeoutExpired:
        pytest.fail("the NPS init did not complete in 240 s (the XLA CPU hang is back)")
    assert out.strip().splitlines()[-1] == "(3, 4)"  # seeds x agents


def test_iql_grid_env_smax_moves_the_four_configs_onto_smax():
    pytest.importorskip("jaxmarl")  # the dev extra installs it
    from baselines import iql_grid
    from baselines.config import load

    for name in iql_grid.GRID:
        magym = load(iql_grid.config_path(name, "authors"))
        smax = load(iql_grid.config_path(name, "authors"), iql_grid.ENVS["smax"])
        assert smax.env == "jaxmarl:HeuristicEnemySMAX"
        assert smax.env_kwargs == {"scenario": "3s_vs_5z"}
        # SMAX gives each ally the team's reward already; ma-gym's are summed by the learner
        assert (magym.team_reward, smax.team_reward) == (True, False)
        assert dataclasses.replace(smax, env=magym.env, env_kwargs=magym.env_kwargs,
                                   team_reward=True) == magym
    with pytest.raises(SystemExit):
        iql_grid.main(["--env", "smac"])


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("double_q", [True, False])
def test_td_loss_matches_a_reference(double_q, masked):
    """Double-Q (online argmax, target value) or max TD targets, masked to filled steps, each
    agent's own loss, against NumPy; with available actions stored, the argmax runs over the
    next step's available actions only."""
    from agents.iql import Episodes, MaskedEpisodes, td_loss

    config = tiny(double_q=double_q, gamma=0.9, comm_coef=0.5)
    rng = np.random.default_rng(0)
    B, T, N, A = 3, 4, 2, 5
    q, q_target = rng.normal(size=(2, B, T + 1, N, A)).astype(np.float32)
    avail = rng.random((B, T + 1, N, A)) < 0.4
    avail[..., 0] = True  # at least one action each
    episodes = Episodes(obs=np.zeros((B, T + 1, N, 1), np.float32),
                        action=rng.integers(0, A, (B, T, N)).astype(np.int32),
                        reward=rng.normal(size=(B, T, N)).astype(np.float32),
                        terminated=rng.random((B, T)) < 0.3, filled=rng.random((B, T)) < 0.7)
    if masked:
        episodes = MaskedEpisodes(*episodes, avail)
    total, parts = jax.device_get(td_loss(config, q, q_target, episodes, np.float32(0.2)))
    taken = np.take_along_axis(q[:, :-1], episodes.action[..., None], -1)[..., 0]
    chooser = (q if double_q else q_target)[:, 1:]
    best = np.where(avail[:, 1:], chooser, -np.inf).argmax(-1) if masked else chooser.argmax(-1)
    assert masked == (best != chooser.argmax(-1)).any()  # the masks matter here
    q_next = np.take_along_axis(q_target[:, 1:], best[..., None], -1)[..., 0]
    y = episodes.reward + 0.9 * (1 - episodes.terminated[..., None]) * q_next
    filled = episodes.filled
    per_agent = ((taken - y) ** 2)[filled].sum(0) / filled.sum()
    np.testing.assert_allclose(parts["per_agent"], per_agent, rtol=1e-5)
    np.testing.assert_allclose(total, per_agent.mean() + 0.5 * 0.2, rtol=1e-5)


def _reference_loss(trainer, params, target, batch, key):
    """The TD loss the straightforward way: the per-step rollout network (``Agents.step``:
    flax's Dense and GRUCell, autodiff through a plain scan) run over each episode from a zero
    carry, with the same channel keys as ``Agents.unroll``; with ``last_action`` the scan
    carries each step's action, one-hot, into the next step (zeros before the first)."""
    from agents.iql import Agents, td_loss

    config, env = trainer.config, trainer.env
    num_actions = int(env.action_space(trainer.env_params).n)
    agents = Agents(config, env.num_agents, num_actions)
    batch_size, length = batch.obs.shape[:2]
    keys = jax.random.split(key, batch_size * length).reshape(batch_size, length)
    actions = jnp.concatenate([batch.action, batch.action[:, -1:]], 1)  # none after step T

    def q_values(p):
        def step(state, inputs):
            carry, last = state
            obs, step_keys, action = inputs
            carry, q, _ = jax.vmap(lambda *a: agents.step(p, *a, True))(
                carry, obs, last if config.last_action else None, step_keys)
            return (carry, jax.nn.one_hot(action, num_actions)), q
        state = (jnp.zeros((batch_size, env.num_agents, config.hidden)),
                 jnp.zeros((batch_size, env.num_agents, num_actions)))
        _, q = jax.lax.scan(step, state, (jnp.swapaxes(batch.obs, 0, 1), keys.T,
                                          jnp.swapaxes(actions, 0, 1)))
        return jnp.swapaxes(q, 0, 1)

    q_target = q_values(jax.lax.stop_gradient(target))
    return td_loss(config, q_values(params), q_target, batch, jnp.float32(0.0))


# no-comm: a subset; the authors' PS config: with the previous action as input
@pytest.mark.parametrize("name", ["iql_ps_comm", "iql_nps_comm", "iql_ps_comm_authors"])
def test_loss_and_gradients_match_a_step_by_step_reference(name):
    """``trainer.loss`` (``Agents.unroll``: the embedding over whole episodes, the GRU in a
    scan, the target unrolled outside the gradient) gives the loss and the gradients of the
    plain step-by-step network with autodiff, PS and NPS, with and without messages, with
    and without the previous action as input; the target network differs from the online
    one."""
    trainer = make_trainer(tiny(name))  # its init and collect compiled as in the tests above
    params, batch = _batch(trainer, jax.random.key(5))
    target = jax.jit(lambda p: jax.tree.map(
        lambda x: x + 0.3 * jax.random.normal(jax.random.key(6), x.shape), p))(params)
    key = jax.random.key(7)
    grad = lambda f: jax.jit(jax.value_and_grad(f, has_aux=True))(params, target, batch, key)
    (loss, parts), g = grad(trainer.loss)
    (ref_loss, ref_parts), ref_g = grad(lambda *a: _reference_loss(trainer, *a))
    assert float(ref_loss) > 0
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    np.testing.assert_allclose(parts["per_agent"], ref_parts["per_agent"], rtol=1e-5)
    scale = max(float(jnp.abs(x).max()) for x in jax.tree.leaves(ref_g))
    for path, a in jax.tree_util.tree_leaves_with_path(g):
        b = ref_g
        for k in path:
            b = b[k.key]
        assert float(jnp.abs(b).max()) > 0, jax.tree_util.keystr(path)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("name", ["iql_ps_comm", "iql_nps_nocomm"])
def test_last_action_is_an_input_of_the_q_network(name):
    """With ``last_action`` the Q-network input is ``[obs, previous action one-hot,
    messages]``, and only the agent whose previous action differs gets other Q-values; without
    it the input is the observation (and messages) alone."""
    from agents import networks as nets
    from agents.iql import Agents

    config = tiny(name, last_action=True)
    env, env_params = config.environment
    n, num_actions = env.num_agents, int(env.action_space(env_params).n)
    key = jax.random.key(0)
    x = nets.flatten_obs(env.reset(key, env_params)[0], n, config.agent_id)
    width = x.shape[-1]
    agents = Agents(config, n, num_actions)
    params = agents.init(key, x)
    a = jax.nn.one_hot(jnp.arange(n) % num_actions, num_actions)
    b = a.at[n - 1].set(jax.nn.one_hot((n - 1 + 1) % num_actions, num_actions))
    inputs = {k: agents.inputs(params, x, last, key, False)[0] for k, last in (("a", a), ("b", b))}
    msgs = n * config.message_dim if config.comm == "message" else 0
    assert inputs["a"].shape == (n, width + num_actions + msgs)
    np.testing.assert_array_equal(inputs["a"][:, :width], x)
    np.testing.assert_array_equal(inputs["a"][:, width:width + num_actions], a)
    np.testing.assert_array_equal(inputs["a"][:, width + num_actions:],
                                  inputs["b"][:, width + num_actions:])
    carry = jnp.zeros((n, config.hidden))
    q_a, q_b = (agents.step(params, carry, x, last, key, False)[1] for last in (a, b))
    np.testing.assert_allclose(q_a[:-1], q_b[:-1], rtol=1e-6)
    assert float(jnp.abs(q_a[-1] - q_b[-1]).max()) > 1e-4
    plain = Agents(dataclasses.replace(config, last_action=False), n, num_actions)
    assert plain.inputs(plain.init(key, x), x, None, key, False)[0].shape == (n, width + msgs)


@pytest.mark.parametrize("name", [f"{c}_authors" for c in CONFIGS])
def test_acting_and_the_loss_unroll_see_the_same_previous_action(name):
    """Greedy episodes played with ``last_action`` (the weights on the previous action scaled
    up so that it sways the argmax): the loss-time unroll of the stored episodes, fed the
    stored actions shifted by one step, has its argmax at the action played at every filled
    step, PS and NPS, with and without messages; fed each step's own action instead (the
    shift off by one) it does not."""
    from agents import networks as nets
    from agents.iql import Agents, previous_actions

    trainer = make_trainer(tiny(name))
    config, env = trainer.config, trainer.env
    assert config.last_action
    n, num_actions = env.num_agents, int(env.action_space(trainer.env_params).n)
    key = jax.random.key(8)
    width = nets.flatten_obs(env.reset(key, trainer.env_params)[0], n, config.agent_id).shape[-1]
    params = jax.tree.map(lambda x: x[0], jax.jit(trainer.init)(key).runners.params)
    kernel = params["q"]["params"]["embedding"]["kernel"]  # rows: obs, previous action, ...
    params["q"]["params"]["embedding"]["kernel"] = kernel.at[
        ..., width:width + num_actions, :].multiply(30.0)
    batch, _ = jax.jit(trainer.collect, static_argnums=(3, 4))(params, key, 0.0, 4, True)
    agents = Agents(config, n, num_actions)
    unroll = jax.jit(lambda last: agents.unroll(params, batch.obs, last, key, False)[0])
    filled, played = np.asarray(batch.filled), np.asarray(batch.action)
    assert filled.sum() >= 8 and len(np.unique(played[filled])) > 1
    greedy = np.asarray(unroll(previous_actions(batch.action, num_actions))[:, :-1].argmax(-1))
    np.testing.assert_array_equal(greedy[filled], played[filled])
    own = jax.nn.one_hot(jnp.concatenate([batch.action, batch.action[:, -1:]], 1), num_actions)
    assert (np.asarray(unroll(own)[:, :-1].argmax(-1))[filled] != played[filled]).any()


def test_team_reward_gives_every_agent_the_sum():
    """``team_reward``: the stored reward of every agent is the sum over agents of the env's
    rewards (same episodes: same key and parameters); without it, each agent's own."""
    own, team = (make_trainer(tiny("iql_ps_nocomm", team_reward=t)) for t in (False, True))
    params, batch = _batch(own, jax.random.key(9), episodes=4)
    summed, _ = jax.jit(team.collect, static_argnums=3)(params, jax.random.key(9), 1.0, 4)
    np.testing.assert_array_equal(summed.action, batch.action)
    np.testing.assert_allclose(summed.reward, np.broadcast_to(
        np.asarray(batch.reward).sum(-1, keepdims=True), batch.reward.shape), rtol=1e-6)
    assert np.abs(np.asarray(summed.reward - batch.reward)).max() > 0.01
    assert not hasattr(batch, "avail")  # PredatorPrey-magym has no action masks


def test_unavailable_actions_are_never_chosen():
    """JaxMARL's MPE speaker-listener through dcgenv.adapters.from_jaxmarl: the speaker's
    actions 3 and 4 are padding (unavailable). With the Q-values of those two raised far above
    the others, neither greedy play nor epsilon-exploration picks them for the speaker, while
    the listener gets them (greedy) and all of its actions (exploring); the stored masks are
    the env's."""
    config = tiny("iql_ps_nocomm", env="jaxmarl:MPE_simple_speaker_listener_v4")
    trainer = make_trainer(config)
    params = jax.tree.map(lambda x: x[0], jax.jit(trainer.init)(jax.random.key(0)).runners.params)
    bias = params["q"]["params"]["readout"]["bias"]
    params["q"]["params"]["readout"]["bias"] = bias.at[3:].add(100.0)
    collect = jax.jit(trainer.collect, static_argnums=(3, 4))
    for eps, greedy in ((0.0, True), (0.5, False), (1.0, False)):
        batch, _ = collect(params, jax.random.key(1), eps, 32, greedy)
        speaker, listener = (set(np.unique(batch.action[..., i]).tolist()) for i in range(2))
        assert speaker <= {0, 1, 2}, (eps, greedy)
        if greedy:
            assert listener <= {3, 4}
    assert speaker == {0, 1, 2} and listener == {0, 1, 2, 3, 4}  # exploring: all available
    avail = np.asarray(batch.avail)
    assert avail.shape == (32, batch.obs.shape[1], 2, 5)
    np.testing.assert_array_equal(avail[:, :, 0], np.broadcast_to([1, 1, 1, 0, 0],
                                                                  avail[:, :, 0].shape))
    assert avail[:, :, 1].all()


# --- keys that follow the authors' code (docs/iql.md, "Against the authors' code") ---

AUTHORS_KEYS = ("time_limit_terminal", "per_agent_clip", "own_message", "opt_eps",
                "rmsprop_eps_in_sqrt", "learn_start", "eval_every", "eval_episodes_during")


def _defaults():
    """``IQLConfig``'s defaults of the keys that follow the authors' code."""
    from agents.config import IQLConfig

    return {f.name: f.default for f in dataclasses.fields(IQLConfig) if f.name in AUTHORS_KEYS}


def _steps(tx, grads, params):
    """``tx``'s updates and states over a sequence of gradients."""
    state, out = tx.init(params), []
    for g in grads:
        update, state = tx.update(g, state, params)
        out.append((update, state))
    return out


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_make_optimizer_defaults_are_the_previous_chain(optimizer):
    """``make_optimizer(config, lr)`` (MAPPO's call) and IQL's call with ``IQLConfig``'s
    defaults give, bit for bit, the updates and states of the chain from before the keys:
    global-norm clipping, then RMSprop (decay 0.99, eps 1e-5 in the sqrt) or Adam (eps 1e-5);
    the gradients' norms lie on both sides of ``max_grad_norm``."""
    import optax

    from agents.config import make_optimizer

    config = tiny(optimizer=optimizer, max_grad_norm=0.5)
    assert {k: getattr(config, k) for k in AUTHORS_KEYS} == _defaults()
    lr = 1e-2
    old = optax.chain(optax.clip_by_global_norm(0.5),
                      optax.rmsprop(lr, decay=0.99, eps=1e-5) if optimizer == "rmsprop"
                      else optax.adam(lr, eps=1e-5))
    rng = np.random.default_rng(0)
    params = {"a": jnp.zeros((3, 4)), "b": {"c": jnp.zeros(5)}}
    grads = [jax.tree.map(lambda x, s=s: jnp.asarray(rng.normal(size=x.shape) * s, jnp.float32),
                          params) for s in (0.01, 1.0, 0.05)]
    assert optax.tree.norm(grads[0]) < 0.5 < optax.tree.norm(grads[1])
    want = _steps(old, grads, params)
    for new in (make_optimizer(config, lr),
                make_optimizer(config, lr, config.opt_eps, config.rmsprop_eps_in_sqrt, None)):
        for a, b in zip(jax.tree.leaves(_steps(new, grads, params)), jax.tree.leaves(want),
                        strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_rmsprop_eps_outside_the_sqrt_is_torchs_formula():
    """``rmsprop_eps_in_sqrt: false`` with ``opt_eps`` 1e-8: two steps of torch's RMSprop
    (alpha 0.99), ``v = 0.99 v + 0.01 g^2``, ``p -= lr g / (sqrt(v) + eps)``, by hand in float64;
    optax's default place, ``sqrt(v + eps)``, is far off for the small gradients."""
    from agents.config import make_optimizer

    config = tiny("iql_nps_comm", opt_eps=1e-8, rmsprop_eps_in_sqrt=False, max_grad_norm=1e3)
    assert config.optimizer == "rmsprop"
    lr, eps = 1e-2, 1e-8
    g = np.array([[1e-5, -1e-4, 1e-3, 0.5, -2.0], [3e-5, 1e-4, -1e-3, 0.1, 1.0]])
    params = {"w": jnp.zeros(5)}
    grads = [{"w": jnp.asarray(x, jnp.float32)} for x in g]
    v, p = np.zeros(5), np.zeros(5)
    for x in g:
        v = 0.99 * v + 0.01 * x**2
        p = p - lr * x / (np.sqrt(v) + eps)
    for tx, torch_like in ((make_optimizer(config, lr, eps, False), True),
                           (make_optimizer(config, lr, eps, True), False)):
        w = params["w"]
        for update, _ in _steps(tx, grads, params):
            w = w + update["w"]
        assert np.allclose(w, p, rtol=1e-5, atol=0) == torch_like


def test_clip_per_agent_clips_each_agents_slice_by_its_own_norm():
    """A stacked pytree (leading agent axis 2 on "q" and "message", none on the shared
    "channel"): agent 0's slices, all parts together, have norm 20 and come out at norm 10
    (``max_norm``), same direction; agent 1's (norm 3) come out unchanged, bit for bit; the
    channel (norm 15) is clipped by its own norm to 10, and scaling it does not move the
    agents'. A global clip would have scaled agent 1 too."""
    import optax

    from agents.iql import clip_per_agent

    rng = np.random.default_rng(1)
    g = {"q": {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=(2, 2, 2))},
         "message": {"c": rng.normal(size=(2, 4))}, "channel": {"d": rng.normal(size=5)}}
    agent_norm = lambda t: np.sqrt(sum(np.sum(np.square(np.asarray(x)).reshape(2, -1), 1)
                                       for k in ("q", "message") for x in jax.tree.leaves(t[k])))
    scale = np.array([20.0, 3.0]) / agent_norm(g)
    g = {k: jax.tree.map(lambda x: x * scale.reshape(-1, *[1] * (x.ndim - 1)), v)
         if k != "channel" else jax.tree.map(lambda x: x * 15.0 / np.linalg.norm(x), v)
         for k, v in g.items()}
    g = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g)
    np.testing.assert_allclose(agent_norm(g), [20.0, 3.0], rtol=1e-6)
    tx = clip_per_agent(10.0)
    out, _ = tx.update(g, tx.init(g))
    np.testing.assert_allclose(agent_norm(out), [10.0, 3.0], rtol=1e-6)
    for a, b in zip(jax.tree.leaves({k: g[k] for k in ("q", "message")}),
                    jax.tree.leaves({k: out[k] for k in ("q", "message")}), strict=True):
        np.testing.assert_allclose(b[0], a[0] / 2, rtol=1e-6)
        np.testing.assert_array_equal(b[1], a[1])
    np.testing.assert_allclose(out["channel"]["d"], g["channel"]["d"] * 10 / 15, rtol=1e-6)
    louder = {**g, "channel": {"d": g["channel"]["d"] * 100}}
    for a, b in zip(jax.tree.leaves(out["q"]), jax.tree.leaves(tx.update(louder, None)[0]["q"]),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    glob, _ = optax.clip_by_global_norm(10.0).update(g, None)
    assert agent_norm(glob)[1] < 2.9


def test_per_agent_clip_sums_the_agents_own_losses():
    """``per_agent_clip``: the TD loss is the sum of the agents' own losses (not their mean)
    plus ``comm_coef`` x the cost, the per-agent losses are unchanged, and the gradient with
    respect to the Q-values is N times the mean's: each agent's that of its own loss."""
    from agents.iql import Episodes, td_loss

    rng = np.random.default_rng(2)
    B, T, N, A = 3, 4, 4, 5
    q, q_target = rng.normal(size=(2, B, T + 1, N, A)).astype(np.float32)
    episodes = Episodes(obs=np.zeros((B, T + 1, N, 1), np.float32),
                        action=rng.integers(0, A, (B, T, N)).astype(np.int32),
                        reward=rng.normal(size=(B, T, N)).astype(np.float32),
                        terminated=rng.random((B, T)) < 0.3, filled=rng.random((B, T)) < 0.7)
    mean, summed = (tiny("iql_nps_nocomm", comm_coef=0.5, per_agent_clip=c) for c in (False, True))
    cost = np.float32(0.2)
    (total_mean, parts_mean), (total_sum, parts_sum) = (
        td_loss(c, q, q_target, episodes, cost) for c in (mean, summed))
    np.testing.assert_array_equal(parts_mean["per_agent"], parts_sum["per_agent"])
    per_agent = np.asarray(parts_sum["per_agent"])
    np.testing.assert_allclose(total_sum, per_agent.sum() + 0.5 * 0.2, rtol=1e-6)
    np.testing.assert_allclose(total_mean, per_agent.mean() + 0.5 * 0.2, rtol=1e-6)
    grad = lambda c: jax.grad(lambda q: td_loss(c, q, q_target, episodes, cost)[0])(q)
    np.testing.assert_allclose(grad(summed), N * grad(mean), rtol=1e-5, atol=1e-7)


def test_ps_without_own_message_reads_the_others_messages_in_order():
    """The authors' PS comm config (``own_message: false``, ``last_action``): the Q-network
    reads ``obs + A + (N - 1) * m`` inputs, and agent i's are its observation, its previous
    action and the message network's outputs of agents ``j != i``, in agent order (by hand
    from the message network; the continuous channel passes them as they are)."""
    from agents import networks as nets
    from agents.iql import Agents

    config = tiny("iql_ps_comm_authors")
    assert config.parameter_sharing and not config.own_message and config.last_action
    env, env_params = config.environment
    n, num_actions, m = env.num_agents, int(env.action_space(env_params).n), config.message_dim
    key = jax.random.key(3)
    x = nets.flatten_obs(env.reset(key, env_params)[0], n, config.agent_id)
    width = x.shape[-1]
    agents = Agents(config, n, num_actions)
    params = agents.init(key, x)
    assert params["q"]["params"]["embedding"]["kernel"].shape[0] == (
        width + num_actions + (n - 1) * m)
    last = jax.nn.one_hot(jnp.arange(n) % num_actions, num_actions)
    inputs, _ = agents.inputs(params, x, last, key, False)
    assert inputs.shape == (n, width + num_actions + (n - 1) * m)
    msgs = np.asarray(jax.vmap(agents.msgnet.apply, in_axes=(None, 0))(params["message"], x))
    assert np.abs(msgs[0] - msgs[1]).max() > 1e-4  # distinct messages: the order shows
    for i in range(n):
        want = np.concatenate([x[i], last[i]] + [msgs[j] for j in range(n) if j != i])
        np.testing.assert_allclose(inputs[i], want, rtol=1e-6, atol=1e-7)


def test_time_limit_terminal_stores_the_cut_as_terminated():
    """The same episodes (same parameters and key, 6-step limit) collected without and with
    ``time_limit_terminal``: on filled steps the stored ``terminated`` differs exactly at the
    time limit of the episodes that reach it (without the key: not terminated, bootstrapped;
    with it: terminated), and every episode's last filled step is terminated with it."""
    plain, cut = (make_trainer(tiny("iql_ps_nocomm", time_limit_terminal=t)) for t in (False, True))
    params, batch = _batch(plain, jax.random.key(10), episodes=8)
    other, _ = jax.jit(cut.collect, static_argnums=3)(params, jax.random.key(10), 1.0, 8)
    np.testing.assert_array_equal(other.action, batch.action)
    filled = np.asarray(batch.filled)
    np.testing.assert_array_equal(other.filled, filled)
    T = filled.shape[1]
    at_limit = np.zeros_like(filled)
    at_limit[:, T - 1] = filled.all(1)  # reached the limit
    assert at_limit.any() and not np.asarray(batch.terminated)[at_limit].any()
    np.testing.assert_array_equal(np.asarray(other.terminated)[filled],
                                  (np.asarray(batch.terminated) | at_limit)[filled])
    last = filled.sum(1) - 1
    assert np.asarray(other.terminated)[np.arange(8), last].all()


_RUNS = {}


def _train(**kw):
    """``tiny("iql_ps_nocomm", batch_episodes=4, num_seeds=2, **kw)`` trained 4 iterations as
    two chunks of 2 (one compile): ``(trainer, [state after each chunk], metrics [4])``,
    kept for the tests that share a run."""
    name = repr(sorted(kw.items()))
    if name not in _RUNS:
        trainer = make_trainer(tiny("iql_ps_nocomm", batch_episodes=4, num_seeds=2,
                                    num_updates=4, **kw))
        state = jax.jit(trainer.init)(jax.random.key(11))
        run = jax.jit(trainer.run, static_argnums=1)
        states, metrics = [], []
        for _ in range(2):
            state, m = run(state, 2)
            states.append(state)
            metrics.append(jax.device_get(m))
        _RUNS[name] = (trainer, states, jax.tree.map(lambda *x: np.concatenate(x), *metrics))
    return _RUNS[name]


def test_learn_start_one_learns_from_the_first_iteration():
    """Batch 4, 2 episodes per iteration: by default the first iteration only stores (NaN
    loss); with ``learn_start: 1`` it already learns, on 4 episodes drawn from the 2 stored."""
    _, _, default = _train()
    _, _, early = _train(learn_start=1)
    assert np.isnan(default["loss"][0]) and np.isfinite(default["loss"][1:]).all()
    assert np.isfinite(early["loss"]).all()


def test_evaluation_during_training_leaves_training_as_it_was():
    """``eval_every: 4`` over two chunks of 2 iterations, 2 seeds: ``eval_success`` and
    ``eval_return`` are NaN but at the 4th iteration (counted across chunks), where they are
    the greedy evaluation of that iteration's parameters on the key derived from the runner's
    (``trainer.evaluate``, mean over seeds); every other metric, the parameters and the
    buffer are bit for bit those of the run without it."""
    trainer, states, evals = _train(eval_every=4, eval_episodes_during=3)
    _, plain_states, plain = _train()
    assert set(evals) == set(plain) | {"eval_success", "eval_return"}
    for k, v in plain.items():
        np.testing.assert_array_equal(evals[k], v, err_msg=k)
    for a, b in zip(jax.tree.leaves((states[-1].runners.params, states[-1].runners.buffer)),
                    jax.tree.leaves((plain_states[-1].runners.params,
                                     plain_states[-1].runners.buffer)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for k in ("eval_success", "eval_return"):
        assert np.isnan(evals[k][:3]).all() and np.isfinite(evals[k][3]), k
    runners = states[-1].runners
    evaluate = jax.jit(trainer.evaluate, static_argnums=2)
    direct = [jax.device_get(evaluate(jax.tree.map(lambda x, s=s: x[s], runners.params),
                                      jax.random.fold_in(runners.key[s], 1), 3))
              for s in range(2)]
    np.testing.assert_allclose(evals["eval_return"][3], np.mean([d["return"] for d in direct]),
                               rtol=1e-6)
    np.testing.assert_allclose(evals["eval_success"][3], np.mean([d["success"] for d in direct]),
                               rtol=1e-6)
    assert direct[0]["return"] != direct[1]["return"]  # the seeds' own keys and parameters


def test_bad_authors_code_keys_raise():
    """Each rule across the new keys names the key and what is allowed."""
    cases = [(dict(name="iql_ps_comm", per_agent_clip=True),
              r"'per_agent_clip'.*allowed with parameter_sharing true: false"),
             (dict(name="iql_nps_comm", own_message=False), r"'own_message'.*allowed here: true"),
             (dict(name="iql_ps_nocomm", own_message=False),
              r"'own_message'.*comm: message only; allowed here: true"),
             (dict(opt_eps=0.0), r"'opt_eps'.*allowed: a number > 0"),
             (dict(opt_eps=-1e-8), r"'opt_eps'.*finite number in"),
             (dict(optimizer="adam", rmsprop_eps_in_sqrt=False),
              r"'rmsprop_eps_in_sqrt'.*allowed with optimizer adam: true"),
             (dict(learn_start=9), r"'learn_start'.*allowed: 0 \(batch_episodes\) to 8"),
             (dict(learn_start=-1), r"'learn_start'.*integer in"),
             (dict(eval_every=-1), r"'eval_every'.*integer in"),
             (dict(eval_episodes_during=0), r"'eval_episodes_during'.*integer in")]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message):
            tiny(**kw)
    tiny("iql_nps_comm", per_agent_clip=True, learn_start=8)  # the edges are allowed


def test_the_authors_configs_carry_the_authors_code_keys():
    """The four ``*_authors`` configs load with the authors' code's settings (the time limit
    as a termination, torch's RMSprop epsilon and its place, learning from the first episode,
    20 greedy episodes every 12 iterations; NPS: per-agent loss and clip; PS with messages:
    the others' messages only); the grid configs keep every new key at its default."""
    for name in CONFIGS:
        config = load(ROOT / "configs" / f"{name}_predator_prey_magym_authors.yaml")
        ps, comm = config.parameter_sharing, config.comm == "message"
        assert (config.time_limit_terminal, config.opt_eps, config.rmsprop_eps_in_sqrt,
                config.learn_start, config.eval_every, config.eval_episodes_during) == (
            True, 1e-8, False, 1, 12, 20), name
        assert config.per_agent_clip == (not ps) and config.own_message == (not (ps and comm))
        grid = load(ROOT / "configs" / f"{name}_predator_prey_magym.yaml")
        assert {k: getattr(grid, k) for k in AUTHORS_KEYS} == _defaults(), name
