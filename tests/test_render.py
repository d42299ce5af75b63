"""Rendering: pixels where cars, agents and goals are; jit/vmap; episodes; GIFs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import dcgenv
from dcgenv import viz
from dcgenv.envs.traffic_junction_layout import build_layout

PX = 8


def centre(row, col, px=PX):
    return row * px + px // 2, col * px + px // 2


def pixel(image, row, col, dy=PX // 2, dx=PX // 2):
    return tuple(np.asarray(image)[row * PX + dy, col * PX + dx])


def tj_state(env, params, slots):
    """A Traffic Junction state with cars at ``{slot: (route, pos)}``, everything else empty."""
    state = env.reset_env(jax.random.key(0), params)
    alive, route, pos = (np.array(x) for x in (state.alive, state.route, state.pos))
    for slot, (r, p) in slots.items():
        alive[slot], route[slot], pos[slot] = True, r, p
    return state.replace(alive=jnp.asarray(alive), route=jnp.asarray(route),
                         pos=jnp.asarray(pos))


def route_cell(level, route, pos):
    lay = build_layout(level)
    per_entry = len(lay.routes[0])
    return lay.routes[route // per_entry][route % per_entry][pos]


def test_traffic_junction_pixels_show_cars_crashes_and_roads():
    env, params = dcgenv.make("TrafficJunction-medium-v0")
    # slot 0 alone; slots 3 and 7 share the first cell of route 3 (a crash); slot 5 not alive
    state = tj_state(env, params, {0: (0, 4), 3: (3, 0), 7: (3, 0)})
    image = np.asarray(jax.jit(env.render)(state, params))
    side = build_layout("medium").side
    assert image.shape == (side * PX, side * PX, 3) and image.dtype == np.uint8
    r0, c0 = route_cell("medium", 0, 4)
    assert pixel(image, r0, c0) == tuple(viz.agent_colors(10)[0])
    r3, c3 = route_cell("medium", 3, 0)
    assert pixel(image, r3, c3) == tuple(viz.color("crash"))
    # the inset leaves the road visible around a car, and an empty road cell is road grey
    assert pixel(image, r0, c0, dy=1, dx=1) == tuple(viz.color("road"))
    r_empty, c_empty = route_cell("medium", 0, 8)
    assert pixel(image, r_empty, c_empty) == tuple(viz.color("road"))
    assert pixel(image, 0, 0) == tuple(viz.color("ground"))  # a corner is off road
    # exactly two cells hold cars: no car drawn for the dead slots
    car_colors = {tuple(c) for c in viz.agent_colors(10)} | {tuple(viz.color("crash"))}
    centres = [pixel(image, r, c) for r in range(side) for c in range(side)]
    assert sum(c in car_colors for c in centres) == 2


def test_render_under_vmap_matches_single_frames():
    env, params = dcgenv.make("TrafficJunction-easy-v0")
    states, length = viz.episode(env, params, jax.random.key(3), num_steps=6)
    frames = jax.jit(jax.vmap(env.render, in_axes=(0, None)))(states, params)
    assert frames.shape == (7, 7 * PX, 7 * PX, 3)
    for t in (0, 6):
        one = jax.tree.map(lambda x, t=t: x[t], states)
        np.testing.assert_array_equal(frames[t], env.render(one, params))
    assert len({np.asarray(f).tobytes() for f in frames}) > 1  # cars arrive and move


def test_gridworld_pixels_show_goal_and_listener():
    env, params = dcgenv.make("GridWorldGoal-v0")
    state = env.reset_env(jax.random.key(0), params).replace(
        goal=jnp.array([6, 1], jnp.int32), pos=jnp.array([2, 5], jnp.int32))  # (x, y)
    image = np.asarray(jax.jit(env.render)(state, params))
    assert image.shape == (8 * PX, 8 * PX, 3)
    assert pixel(image, 1, 6) == tuple(viz.color("goal"))  # row y = 1, column x = 6
    assert pixel(image, 1, 6, dy=1, dx=1) == tuple(viz.color("goal"))  # goal fills the cell
    assert pixel(image, 5, 2) == tuple(viz.color("agent"))
    assert pixel(image, 5, 2, dy=1, dx=1) == tuple(viz.color("ground"))  # listener is inset
    assert pixel(image, 6, 1) == tuple(viz.color("ground"))  # transposed cell is empty
    assert pixel(image, 1, 6, dy=0, dx=3) == tuple(viz.color("grid"))


def test_marks_drop_out_of_range_and_masked_and_draw_highest_index_on_ties():
    layer = viz.marks((3, 4), jnp.array([0, 0, 2, -1, 1]), jnp.array([1, 1, 3, 0, 9]),
                      jnp.array([[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4], [5, 5, 5]]),
                      where=jnp.array([True, True, False, True, True]))
    assert np.asarray(layer.present).sum() == 1 and bool(layer.present[0, 1])
    assert tuple(np.asarray(layer.colors[0, 1])) == (2, 2, 2)
    with pytest.raises(ValueError, match="cell_px"):
        viz.to_pixels(viz.canvas(2, 2), cell_px=2)
    with pytest.raises(ValueError, match="allowed"):
        viz.color("purple")


def test_episode_keeps_the_final_state_and_stops_there():
    env, params = dcgenv.make("GridWorldGoal-v0")

    def walk_to_goal(key, obs):  # the speaker sends the goal; the listener reads its own copy
        goal, pos = obs["goal"][0], obs["position"][1]
        dx, dy = goal - pos
        move = jnp.select([dx > 0, dx < 0, dy > 0, dy < 0], [3, 4, 2, 1], 0)
        return {"move": jnp.stack([0, move]).astype(jnp.int32),
                "message": jnp.zeros((2, 4), jnp.float32)}

    states, length = viz.episode(env, params, jax.random.key(5), walk_to_goal)
    n = int(length)
    goal, start = np.asarray(states.goal[0]), np.asarray(states.pos[0])
    assert n == 1 + np.abs(goal - start).sum()  # one state per step, the final one included
    np.testing.assert_array_equal(states.pos[n - 1], goal)
    np.testing.assert_array_equal(states.pos[-1], goal)  # frozen after the end, no reset
    assert states.pos.shape[0] == params.max_steps_in_episode + 1
    again, _ = viz.episode(env, params, jax.random.key(5), walk_to_goal)
    np.testing.assert_array_equal(again.pos, states.pos)  # same key, same episode


def test_episode_with_a_recurrent_policy_threads_its_carry():
    env, params = dcgenv.make("TrafficJunction-easy-v0")

    def brake_later(key, obs, t):  # gas on the first five steps, then brake
        return jnp.full(env.num_agents, jnp.where(t < 5, 0, 1), jnp.int32), t + 1

    states, _ = viz.episode(env, params, jax.random.key(1), brake_later,
                            carry=jnp.zeros((), jnp.int32), num_steps=10)
    pos, alive = np.asarray(states.pos), np.asarray(states.alive)
    moved = (pos[1:] > pos[:-1]) & alive[:-1] & alive[1:]
    assert moved[:5].any() and not moved[5:].any()


def test_save_gif_writes_every_frame(tmp_path):
    env, params = dcgenv.make("TrafficJunction-easy-v0")
    states, length = viz.episode(env, params, jax.random.key(2), num_steps=5)
    path = viz.save_gif(states, tmp_path / "tj.gif", env, params, fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 6 and gif.size == (7 * PX, 7 * PX)
        gif.seek(0)
        first = np.asarray(gif.convert("RGB"))
    np.testing.assert_array_equal(first, env.render(jax.tree.map(lambda x: x[0], states)))
    with pytest.raises(ValueError, match="uint8 frames"):
        viz.save_gif(np.zeros((2, 4, 4, 3), np.float32), tmp_path / "bad.gif")
    with pytest.raises(ValueError, match="render"):
        viz.save_gif(states, tmp_path / "bad.gif", dcgenv.make("Witsenhausen-v0")[0])


def test_predator_prey_pixels_show_prey_predators_and_frozen_ones():
    env, params = dcgenv.make("PredatorPrey-medium-v0")
    state = env.reset_env(jax.random.key(0), params)
    predators = jnp.array([[0, 0], [4, 7], [9, 9], [4, 7], [2, 3]], jnp.int32)  # (row, col)
    frozen = jnp.array([False, True, False, False, False])  # 1 is frozen on the prey
    state = state.replace(predators=predators, prey=jnp.array([4, 7], jnp.int32), frozen=frozen)
    image = np.asarray(jax.jit(env.render)(state, params))
    assert image.shape == (10 * PX, 10 * PX, 3)
    colors = viz.agent_colors(5)
    assert pixel(image, 0, 0) == tuple(colors[0]) and pixel(image, 2, 3) == tuple(colors[4])
    assert pixel(image, 0, 0, dy=1, dx=1) == tuple(viz.color("ground"))  # predators are inset
    assert pixel(image, 3, 2) == tuple(viz.color("ground"))  # (row, col) not transposed
    # the prey's cell: predator 3 (not frozen) drawn over predator 1, the prey around them
    assert pixel(image, 4, 7) == tuple(colors[3])
    assert pixel(image, 4, 7, dy=1, dx=1) == tuple(viz.color("prey"))
    alone = state.replace(predators=predators.at[3].set(jnp.array([9, 0])))
    assert pixel(env.render(alone, params), 4, 7) == tuple(viz.color("frozen"))


def test_predator_prey_magym_pixels_skip_captured_prey():
    env, params = dcgenv.make("PredatorPrey-magym-v0")
    state = env.reset_env(jax.random.key(0), params).replace(
        predators=jnp.array([[0, 1], [2, 2], [6, 6], [3, 0]], jnp.int32),
        prey=jnp.array([[5, 1], [1, 5]], jnp.int32), prey_alive=jnp.array([True, False]))
    image = np.asarray(jax.jit(env.render)(state, params))
    assert image.shape == (7 * PX, 7 * PX, 3)
    assert pixel(image, 5, 1) == tuple(viz.color("prey"))
    assert pixel(image, 1, 5) == tuple(viz.color("ground"))  # captured: not drawn
    for i, (r, c) in enumerate([(0, 1), (2, 2), (6, 6), (3, 0)]):
        assert pixel(image, r, c) == tuple(viz.agent_colors(4)[i])
