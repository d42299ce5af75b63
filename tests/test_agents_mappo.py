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
        runners, _ = trainer.init(key)
        runner = jax.tree.map(lambda a: a[0], runners)

        def one(runner, _):
            runner, batch = trainer.collect(runner)
            before = trainer.loss(runner.params, batch)[0]
            runner, losses = trainer.learn(runner, batch)
            return runner, (before, trainer.loss(runner.params, batch)[0], losses, batch[1])
        return jax.lax.scan(one, runner, None, length=3)[1]

    before, after, losses, tr = jax.device_get(updates(jax.random.key(0)))
    assert np.all(np.isfinite(before)) and np.all(np.isfinite(after))
    assert all(np.all(np.isfinite(v)) for v in losses.values())
    assert np.all(after < before), (before, after)
    assert tr["alive"].any()  # the masked losses saw live agents
    if "commnet" in case:
        assert np.all(tr["bits"][tr["messages"] > 0] > 0)  # DDCL messages cost bits
    if "gridworld" in case:
        assert tr["action"]["message"].shape[-1] == 4 and np.std(tr["action"]["message"]) > 0


def test_make_train_compiles_whole_vmaps_seeds_and_reports_progress():
    cfg = load(CONFIGS / "mappo_predator_prey_easy.yaml", SMALL + ["num_seeds=2",
                                                                  "num_updates=2", "log_every=1"])
    calls = []
    train = make_train(cfg, progress=lambda i, m: calls.append((int(i), float(m["loss"]))))
    (runners, update), metrics = jax.jit(train)(jax.random.key(0))
    jax.effects_barrier()
    assert int(update) == 2 and metrics["loss"].shape == (2,)
    assert [c[0] for c in calls] == [1, 2]  # from inside the compiled loop, every update
    np.testing.assert_allclose([c[1] for c in calls], metrics["loss"], rtol=1e-6)
    kernel = jax.tree.leaves(runners.params["actor"])[0]
    assert kernel.shape[0] == 2 and not np.array_equal(kernel[0], kernel[1])  # 2 seeds
