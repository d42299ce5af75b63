"""Random-policy statistics of our Predator-Prey envs against the original implementations'.

The reference numbers are the originals' (IC3Net ``predator_prey_env.py``, ma-gym
``predator_prey.py``) over 4,000 uniformly-random-policy episodes each, measured as described
in ``docs/parity.md`` (``benchmarks/parity_predator_prey.py`` runs both sides at full size).
Here a modest number of our episodes must agree within 4 combined standard errors.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import dcgenv
from benchmarks import parity_predator_prey as parity
from dcgenv.envs.predator_prey import mode_code

# (mean, standard error) of the originals, 4,000 episodes each
IC3NET_EASY = {
    "mixed": {"success": (0.026, 0.00252), "team_return": (-0.82583, 0.00292),
              "length": (19.855, 0.01796)},
    "cooperative": {"success": (0.02875, 0.00264), "team_return": (-0.55437, 0.00864)},
    "competitive": {"success": (0.0285, 0.00263), "team_return": (-0.68778, 0.00480)},
}
EASY = dcgenv.make("PredatorPrey-easy-v0")
MAGYM = {"success": (0.272, 0.00704), "team_return": (-12.14086, 0.158),
         "length": (88.71725, 0.36236), "captures": (1.04675, 0.01113)}


# the same statistics scan that produced our side of docs/parity.md
first_episodes = jax.jit(parity.first_episodes, static_argnums=(0, 3, 4))


def assert_agrees(ours, reference):
    for name, (ref_mean, ref_se) in reference.items():
        x = np.asarray(ours[name], np.float64)
        se = x.std(ddof=1) / np.sqrt(len(x))
        tol = 4 * np.hypot(se, ref_se)
        assert abs(x.mean() - ref_mean) <= tol, (name, x.mean(), ref_mean, tol)


@pytest.mark.parametrize("mode", ["mixed", "cooperative", "competitive"])
def test_ic3net_easy_matches_original(mode):
    env, params = EASY  # one env object: the three modes share one compilation
    params = params.replace(mode=mode_code(mode))
    ended, stats = first_episodes(env, params, jax.random.key(11), 1500, 20)
    assert bool(ended.all())
    assert_agrees(stats, IC3NET_EASY[mode])


def test_magym_matches_original():
    env, params = dcgenv.make("PredatorPrey-magym-v0")
    ended, stats = first_episodes(env, params, jax.random.key(12), 1000, 100)
    assert bool(ended.all())
    assert_agrees(stats, MAGYM)
