"""Rule, observation, curriculum and statistics tests of TrafficJunction-{easy,medium,hard}-v0."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dcgenv
from dcgenv.envs.traffic_junction import TrafficJunction, curriculum_add_rate
from dcgenv.envs.traffic_junction_layout import LEVELS, build_layout

GAS, BRAKE = 0, 1
LEVEL_NAMES = tuple(LEVELS)


@functools.cache
def cached_env(level, vision=None):
    """One env object per configuration, so jit caches are shared between tests."""
    return dcgenv.make(f"TrafficJunction-{level}-v0", vision=vision)[0]


def make(level, vision=None, **params):
    env = cached_env(level, vision)
    return env, env.default_params.replace(**params)


def final_states(env, params, seed):
    """States after 15 random steps in 2 environments (one compile per env, shared)."""
    _, (_, states) = dcgenv.rollout(env, params, jax.random.key(seed), num_envs=2, num_steps=15)
    return [jax.tree.map(lambda x, e=e: x[e], states) for e in range(2)]


def place(env, cars):
    """A state with ``cars = [(slot, route, pos, wait), ...]`` in the system, others free."""
    _, state = env.reset(jax.random.key(0))
    alive, route, pos, wait = (np.zeros(env.num_agents, t) for t in (bool, int, int, int))
    for slot, r, p, w in cars:
        alive[slot], route[slot], pos[slot], wait[slot] = True, r, p, w
    i32 = lambda x: jnp.asarray(x, jnp.int32)
    return state.replace(alive=jnp.asarray(alive), route=i32(route), pos=i32(pos),
                         wait=i32(wait))


def step(env, params, state, actions, seed=1):
    actions = jnp.asarray(actions, jnp.int32)
    return env.step(jax.random.key(seed), state, actions, params)


def route_of(level, entry, index=0):
    lay = build_layout(level)
    return entry * len(lay.routes[0]) + index, lay.routes[entry][index]


# ---------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("level, obs_size, vocab, entries, per_entry",
                         [("easy", 17, 15, 2, 1), ("medium", 533, 59, 4, 3),
                          ("hard", 1325, 147, 8, 7)])
def test_level_sizes_match_ic3net(level, obs_size, vocab, entries, per_entry):
    env, params = make(level)
    obs, _ = env.reset(jax.random.key(0), params)
    assert obs["obs"].shape == (env.num_agents, obs_size) and env.vocab == vocab
    assert (env.num_entries, env.routes_per_entry) == (entries, per_entry)
    spec = LEVELS[level]
    assert env.num_agents == spec.num_agents and env.vision == spec.vision
    assert params.max_steps_in_episode == spec.max_steps and params.add_rate == spec.add_rate


@pytest.mark.parametrize("level", LEVEL_NAMES)
def test_routes_are_connected_distinct_paths_from_edge_to_edge(level):
    lay = build_layout(level)
    n, paths = lay.side, [p for entry in lay.routes for p in entry]
    assert len(set(paths)) == len(paths)
    for entry in lay.routes:
        assert len({p[0] for p in entry}) == 1  # one start cell per entry
    for p in paths:
        steps = np.abs(np.diff(np.array(p), axis=0)).sum(1)
        assert np.all(steps == 1) and len(set(p)) == len(p)
        for r, c in (p[0], p[-1]):
            assert r in (0, n - 1) or c in (0, n - 1)
        assert all(lay.cell_ids[r, c] != lay.outside or level == "easy" for r, c in p)


# ---------------------------------------------------------------------------- rules
def test_two_cars_entering_one_cell_both_crash():
    env, params = make("easy", add_rate=0.0)
    r0, p0 = route_of("easy", 0)
    r1, p1 = route_of("easy", 1)
    j = p0.index((3, 3))
    assert p1.index((3, 3)) == j  # both routes reach the junction after the same distance
    state = place(env, [(0, r0, j - 1, 4), (1, r1, j - 1, 2), (2, r0, 0, 1)])
    _, state, reward, term, trunc, info = step(env, params, state, [GAS, GAS, GAS, 0, 0])
    np.testing.assert_allclose(reward, [-10 - 0.05, -10 - 0.03, -0.02, 0, 0], atol=1e-6)
    assert int(info["collisions"]) == 2 and not bool(info["success"])
    assert not bool(term) and not bool(trunc)
    _, _, reward, *_, info = step(env, params, state, [BRAKE, BRAKE, BRAKE, 0, 0])
    np.testing.assert_allclose(reward[:2], [-10 - 0.06, -10 - 0.04], atol=1e-6)  # again
    assert not bool(info["success"])  # a crash fails the rest of the episode


def test_car_can_crash_as_it_arrives():
    env, params = make("easy", add_rate=1.0)
    r0, _ = route_of("easy", 0)
    state = place(env, [(0, r0, 0, 3)])  # braking on entry 0's first cell
    _, state, reward, *_, info = step(env, params, state, [BRAKE] * 5)
    assert int(info["entered"]) == 2 and int(state.alive.sum()) == 3
    newcomer = int(np.flatnonzero(np.asarray(state.alive & (state.route == r0) & (state.pos == 0)
                                             & (jnp.arange(5) != 0)))[0])
    assert float(reward[0]) == pytest.approx(-10 - 0.04)
    assert float(reward[newcomer]) == pytest.approx(-10.0)  # wait 0 on arrival
    assert int(info["collisions"]) == 2


def test_finishing_car_leaves_and_frees_its_slot_for_an_arrival():
    env, params = make("easy", add_rate=1.0)
    r0, p0 = route_of("easy", 0)
    r1, _ = route_of("easy", 1)
    cars = [(0, r0, len(p0) - 1, 9)] + [(s, r1, s, 1) for s in range(1, 5)]  # full system
    state = place(env, cars)
    _, new, reward, *_, info = step(env, params, state, [GAS] + [BRAKE] * 4)
    assert int(info["completed"]) == 1 and int(info["entered"]) == 1  # the cap allows one
    assert bool(new.alive[0]) and int(new.route[0]) == r0 and int(new.pos[0]) == 0
    assert int(new.wait[0]) == 0 and float(reward[0]) == 0.0  # a new car in the freed slot
    # with no arrivals the slot stays free, and its reward is 0
    _, new, reward, *_, info = step(env, params.replace(add_rate=0.0), state,
                                    [GAS] + [BRAKE] * 4)
    assert not bool(new.alive[0]) and float(reward[0]) == 0.0 and int(info["entered"]) == 0
    assert int(new.wait[0]) == 0


def test_brake_keeps_position_gas_advances_and_wait_grows():
    env, params = make("medium", add_rate=0.0)
    r, path = route_of("medium", 2, 1)
    state = place(env, [(3, r, 5, 7), (4, r, 2, 0)])
    actions = np.zeros(env.num_agents, int)
    actions[3] = BRAKE
    _, new, reward, *_, info = step(env, params, state, actions)
    assert bool(info["success"]) and int(info["collisions"]) == 0
    _, _, _, *_, info_failed = step(env, params, state.replace(failed=jnp.asarray(True)), actions)
    assert not bool(info_failed["success"])  # an earlier crash fails the episode
    assert int(new.pos[3]) == 5 and int(new.wait[3]) == 8 and int(new.last_act[3]) == BRAKE
    assert int(new.pos[4]) == 3 and int(new.last_act[4]) == GAS
    np.testing.assert_allclose(np.asarray(reward)[[3, 4]], [-0.08, -0.01], atol=1e-6)
    assert np.all(np.asarray(reward)[np.r_[0:3, 5:10]] == 0)
    obs = env.get_obs(new, params)["obs"]
    assert float(obs[3, 0]) == 1.0 and float(obs[4, 0]) == 0.0  # last action


def test_dead_cars_actions_are_ignored_and_out_of_range_actions_clipped():
    env, params = make("hard", add_rate=0.0)
    r, _ = route_of("hard", 5, 3)
    state = place(env, [(0, r, 4, 2)])
    a = np.full(env.num_agents, 7)  # clipped to brake
    _, new, *_ = step(env, params, state, a)
    assert int(new.pos[0]) == 4 and int(new.last_act[0]) == BRAKE
    a[0] = -3  # clipped to gas
    _, new, *_ = step(env, params, new, a)
    assert int(new.pos[0]) == 5
    for field in ("alive", "pos", "wait", "last_act"):
        np.testing.assert_array_equal(getattr(new, field)[1:], getattr(state, field)[1:])


@pytest.mark.parametrize("level", LEVEL_NAMES)
def test_arrivals_respect_the_cap(level):
    env, params = make(level, add_rate=1.0)
    r, _ = route_of(level, 0)
    n = env.num_agents
    state = place(env, [(s, r, 0, 0) for s in range(n - 1)])
    _, new, *_, info = step(env, params, state, np.full(n, BRAKE))
    assert int(info["entered"]) == 1 and int(new.alive.sum()) == n
    # random steps at add_rate 1 fill the system and never exceed the cap
    for state in final_states(env, params, seed=2):
        assert int(state.alive.sum()) == n


# ---------------------------------------------------------------------------- observations
def reference_obs(env, level, state):
    """The encoding written out cell by cell (numpy loops over cars and window cells)."""
    lay, v = build_layout(level), env.vision
    paths = [p for entry in lay.routes for p in entry]
    alive = np.asarray(state.alive)
    where = [paths[int(r)][min(int(p), len(paths[int(r)]) - 1)]
             for r, p in zip(state.route, state.pos, strict=True)]
    out = np.zeros((env.num_agents, env.obs_size), np.float32)
    for i in np.flatnonzero(alive):
        out[i, 0], out[i, 1] = state.last_act[i], state.route[i] / (env.num_routes - 1)
        (r, c), k = where[i], 0
        for dy in range(-v, v + 1):
            for dx in range(-v, v + 1):
                y, x = r + dy, c + dx
                inside = 0 <= y < lay.side and 0 <= x < lay.side
                out[i, 2 + k * env.vocab + (lay.cell_ids[y, x] if inside else lay.outside)] = 1
                cars = sum(alive[j] and where[j] == (y, x) for j in range(env.num_agents))
                out[i, 2 + k * env.vocab + lay.car_channel] += cars
                k += 1
    return out


@pytest.mark.parametrize("level, vision", [("easy", None), ("medium", None), ("hard", None),
                                           ("hard", 2)])
def test_observation_matches_cell_by_cell_encoding_on_random_states(level, vision):
    env, params = make(level, vision=vision, add_rate=0.6)
    for state in final_states(env, params, seed=3):
        assert int(state.alive.sum()) >= 2
        got = np.asarray(env.get_obs(state, params)["obs"])
        np.testing.assert_allclose(got, reference_obs(env, level, state), atol=1e-6)


def test_visible_car_is_counted_in_its_window_cell():
    env, params = make("medium")
    r, path = route_of("medium", 0, 2)  # southbound: the next cell is one row down
    state = place(env, [(0, r, 3, 1), (5, r, 4, 1)])
    obs = np.asarray(env.get_obs(state, params)["obs"])
    car = lambda i, k: obs[i, 2 + k * env.vocab + env.car_channel]
    assert [car(0, k) for k in range(9)] == [0, 0, 0, 0, 1, 0, 0, 1, 0]  # self, and below
    assert [car(5, k) for k in range(9)] == [0, 1, 0, 0, 1, 0, 0, 0, 0]  # self, and above
    lay = build_layout("medium")
    (y, x) = path[3]
    assert obs[0, 2 + 4 * env.vocab + lay.cell_ids[y, x]] == 1  # own cell's road id
    assert obs[0, 1] == pytest.approx(r / 11)
    assert np.all(obs[np.r_[1:5, 6:10]] == 0)  # free slots see nothing
    crash = place(env, [(0, r, 4, 1), (5, r, 4, 1)])  # two cars on one cell: count 2
    obs = np.asarray(env.get_obs(crash, params)["obs"])
    assert obs[0, 2 + 4 * env.vocab + env.car_channel] == 2
    np.testing.assert_array_equal(np.asarray(env.get_obs(crash, params)["alive"]),
                                  np.asarray(crash.alive))


@pytest.mark.parametrize("obs_mode", ["onehot", "uint8", "index"])
def test_every_last_act_and_route_is_observed_and_free_slots_see_nothing(obs_mode):
    """get_obs reads [alive, last_act, route] from a lookup table: every row, every mode."""
    env = dcgenv.make("TrafficJunction-hard-v0", obs_mode=obs_mode)[0]
    params = env.default_params
    full = dcgenv.make("TrafficJunction-hard-v0")[0]
    n, num_routes = env.num_agents, env.num_routes
    for last_act in (0, 1):
        for first in range(0, num_routes, n // 2):
            # slots 0, 2, 4, ... hold cars on routes first, first + 1, ...; odd slots are free
            # with stale route, position and last action (and the same cell as a car)
            routes = np.arange(first, first + n) % num_routes
            cars = [(slot, int(routes[slot]), 0, 0) for slot in range(0, n, 2)]
            state = place(env, cars)
            stale = np.asarray(state.alive) == 0
            state = state.replace(route=jnp.asarray(routes, jnp.int32),
                                  last_act=jnp.full(n, last_act, jnp.int32))
            obs = np.asarray(env.expand_obs(env.get_obs(state, params), params)["obs"])
            np.testing.assert_allclose(obs, reference_obs(full, "hard", state), atol=1e-6)
            assert np.all(obs[stale] == 0)
            np.testing.assert_array_equal(obs[~stale, 0], last_act)
            np.testing.assert_allclose(obs[~stale, 1], routes[~stale] / (num_routes - 1),
                                       atol=1e-6)


# ---------------------------------------------------------------------------- curriculum, errors
@pytest.mark.parametrize("level", LEVEL_NAMES)
def test_curriculum_schedule(level):
    lo, hi, start, end = LEVELS[level].curriculum
    rates = np.array([float(curriculum_add_rate(e, level)) for e in range(0, end + 100, 10)])
    epochs = np.arange(0, end + 100, 10)
    assert np.all(np.diff(rates) >= 0)
    np.testing.assert_allclose(rates[epochs < start], lo, atol=1e-7)
    assert np.all(rates[epochs >= end] <= hi + 1e-7) and np.all(rates[epochs >= end] > hi - 0.011)
    np.testing.assert_allclose(rates * 100, np.round(rates * 100), atol=1e-4)
    jitted = jax.jit(curriculum_add_rate, static_argnums=1)
    assert float(jitted(jnp.int32(start + 500), level)) == float(
        curriculum_add_rate(start + 500, level))
    env, params = make(level)  # a trainer writes the rate into params, under jit or not
    params = params.replace(add_rate=curriculum_add_rate(jnp.int32(end), level))
    obs, _ = jax.jit(env.reset)(jax.random.key(0), params)
    assert obs["obs"].dtype == jnp.float32


def test_bad_python_side_input_raises():
    with pytest.raises(ValueError, match="easy"):
        TrafficJunction(level="extreme")
    with pytest.raises(ValueError, match="vision"):
        dcgenv.make("TrafficJunction-easy-v0", vision=-1)
    with pytest.raises(ValueError, match="num_agents"):
        dcgenv.make("TrafficJunction-hard-v0", num_agents=0)
    with pytest.raises(ValueError, match="medium"):
        curriculum_add_rate(3, "impossible")
    env, params = dcgenv.make("TrafficJunction-easy-v0", num_agents=3, vision=2)
    obs, _ = env.reset(jax.random.key(0), params)
    assert obs["obs"].shape == (3, 2 + 25 * 15)


# ---------------------------------------------------------------------------- statistics
# IC3Net's original code (docs/parity.md, Traffic Junction): per-episode mean and its standard
# error over 10,000 (uniform policy) / 5,000 (always gas) episodes.
ORIGINAL = {
    ("easy", 0.5): {"success": (0.0058, 0.0008), "collisions": (19.8357, 0.0948),
                    "team_return": (-40.5137, 0.1905), "entered": (7.4620, 0.0124),
                    "completed": (3.1800, 0.0123)},
    ("easy", 1.0): {"success": (0.2740, 0.0063), "collisions": (2.1848, 0.0253),
                    "team_return": (-4.7170, 0.0509), "entered": (10.4848, 0.0267),
                    "completed": (6.9204, 0.0227)},
    ("hard", 1.0): {"success": (0.0770, 0.0038), "collisions": (19.5326, 0.2558),
                    "team_return": (-12.2186, 0.1310), "entered": (31.8348, 0.0775),
                    "completed": (24.2456, 0.0677)},
}
METRICS = ("success", "collisions", "team_return", "entered", "completed")


@functools.cache
def episode_metrics(env):
    """Jitted ``(key, params, gas_prob, num_envs) -> per-episode metrics``; obs not stored."""
    steps = env.default_params.max_steps_in_episode

    @functools.partial(jax.jit, static_argnums=3)
    def run(key, params, gas_prob, num_envs):
        def one(key):
            _, state = env.reset(jax.random.split(key)[0], params)

            def body(carry, key):
                state, totals = carry
                k_act, k_step = jax.random.split(key)
                brake = jax.random.uniform(k_act, (env.num_agents,)) >= gas_prob
                _, state, reward, _, _, info = env.step(k_step, state, brake.astype(jnp.int32),
                                                        params)
                sums = (info["collisions"], reward.mean(), info["entered"], info["completed"])
                sums = tuple(t + x for t, x in zip(totals[1:], sums, strict=True))
                return (state, (info["success"], *sums)), None

            zeros = (jnp.ones((), bool), 0, 0.0, 0, 0)
            keys = jax.random.split(jax.random.split(key)[1], steps)
            return jax.lax.scan(body, (state, zeros), keys)[0][1]

        return jax.vmap(one)(jax.random.split(key, num_envs))

    return run


@pytest.mark.parametrize("level, gas_prob, num_envs", [("easy", 0.5, 1000), ("easy", 1.0, 1000),
                                                       ("hard", 1.0, 150)])
def test_episode_statistics_match_the_original(level, gas_prob, num_envs):
    env, params = make(level)
    got = episode_metrics(env)(jax.random.key(11), params, gas_prob, num_envs)
    for name, values in zip(METRICS, got, strict=True):
        values = np.asarray(values, float)
        mean, se = values.mean(), values.std(ddof=1) / np.sqrt(len(values))
        ref, ref_se = ORIGINAL[level, gas_prob][name]
        tol = 4 * np.hypot(max(se, 1 / len(values)), ref_se)
        assert abs(mean - ref) < tol, f"{level} {name}: ours {mean:.4f} ± {se:.4f}, IC3Net {ref}"
