"""baselines/overgeneralisation.py: the scripted predators act as documented, and the measured
returns show the equilibria docs/iql.md reads off them (small episode counts)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from baselines import overgeneralisation as og

ENV, PARAMS = dcgenv.make("PredatorPrey-magym-v0")


def state(predators, prey, alive=(True, True)):
    _, s = ENV.reset(jax.random.key(0), PARAMS)
    return s.replace(predators=jnp.array(predators, jnp.int32),
                     prey=jnp.array(prey, jnp.int32), prey_alive=jnp.array(alive))


FAR_PREDATORS = [[0, 0], [6, 0], [6, 6], [0, 6]]


def test_chase_steps_towards_the_prey_and_stays_next_to_it():
    s = state(FAR_PREDATORS, [[0, 3], [6, 3]])  # agent 0 at (0, 0); prey 3 to the right
    assert int(og.chase(ENV, s, 0)) == 3  # right
    s = state([[0, 2], [6, 0], [6, 6], [0, 6]], [[0, 3], [6, 3]])  # next to the prey
    assert int(og.chase(ENV, s, 0)) == 4  # stay
    s = state(FAR_PREDATORS, [[0, 3], [6, 3]], alive=(False, False))
    assert int(og.chase(ENV, s, 0)) == 4  # nothing left to chase


def test_pounce_waits_for_a_partner_and_avoid_keeps_off_the_prey():
    # agent 0 two steps from the prey at (2, 2), alone: waits
    s = state([[0, 2], [6, 0], [6, 6], [0, 6]], [[2, 2], [6, 3]])
    assert int(og.pounce(ENV, s, 0)) == 4
    # a partner two steps away on the other side: agent 0 steps next to the prey (down)
    s = state([[0, 2], [4, 2], [6, 6], [0, 6]], [[2, 2], [6, 3]])
    assert int(og.pounce(ENV, s, 0)) == 0
    # alone next to the prey: the avoider's move, onto a cell next to no prey
    s = state([[1, 2], [6, 0], [6, 6], [0, 6]], [[2, 2], [6, 4]])
    act = int(og.pounce(ENV, s, 0))
    cell = np.array([1, 2]) + og.MOVES[act]
    assert act == int(og.avoid(ENV, s, 0))
    assert np.abs(cell - np.array([2, 2])).sum() >= 2


def play(focal, base, eps, episodes=24):
    keys = jax.random.split(jax.random.key(3), episodes)
    run = jax.jit(jax.vmap(lambda k: og.episode(ENV, PARAMS, k, focal, base, eps)))
    ret, succ, capt, pen = run(keys)
    return float(ret.mean()), float(succ.mean()), float(pen.sum())


def test_all_avoid_is_the_step_cost_floor_and_pouncing_alone_is_punished():
    ret, succ, pen = play("avoid", "avoid", 0.0)
    assert ret == pytest.approx(-1.0, abs=1e-5) and succ == 0.0 and pen == 0.0
    # against avoiders, the coordinated approach (it needs the partner to come) and the plain
    # chase lose to keeping away: keeping away is the best response, a stable equilibrium
    assert play("pounce", "avoid", 0.0)[0] < ret - 3.0
    assert play("chase", "avoid", 0.0)[0] < ret - 30.0


def test_coordinated_predators_capture_and_beat_the_avoiders():
    ret, succ, _ = play("pounce", "pounce", 0.0)
    assert succ > 0.5 and ret > 2.0  # all-avoid: -1.0


def test_best_and_table_read_the_result():
    runs = {f"{b}/{f}": {"return": [float(i == j) for j in range(2)], "return_se": [0.0, 0.0]}
            for b in og.BASES for i, f in enumerate(og.BASES)}
    result = {"eps": [0.0, 1.0], "runs": runs}
    assert og.best(result, "avoid") == ["chase", "pounce"]
    text = og.table(result)
    assert text.count("\n") == 2 + 2 * len(og.BASES) - 1
    assert "| avoid | 1.0 | 0.00 ± 0.00 | 1.00 ± 0.00 | 0.00 ± 0.00 | pounce |" in text
