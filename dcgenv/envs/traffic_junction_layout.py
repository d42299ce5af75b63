"""Traffic Junction levels, road layouts, routes and the IC3Net add-rate curriculum.

Host-side numpy, run once when an environment is built; ``traffic_junction.py`` holds the
game. Everything here reproduces IC3Net's ``ic3net-envs`` (``traffic_junction_env.py`` and
``traffic_helper.py``); ``benchmarks/parity_traffic_junction.py`` checks the cell ids, the
routes and the curriculum against the original code, value for value.

Layouts (``n`` is the side of the square grid; traffic drives on the right):

- easy (``n = dim + 1 = 7``): one one-way road down column ``n//2`` and one along row ``n//2``;
  one route each (straight on).
- medium (``n = 14``): two-lane roads on rows ``n/2-1, n/2`` and columns ``n/2-1, n/2``
  (one 2x2 junction); entries top, bottom, left, right; 3 routes each (straight, right, left).
- hard (``n = 18``): two-lane roads on rows and columns ``n/3-2, n/3-1`` and ``2n/3, 2n/3+1``
  (four junctions); 8 entries (two per side); a turn decision at each of the first two
  junctions met, straight on after that: 7 routes per entry (the one first turn that leads
  straight to an exit is not split by a second decision).

A right turn is taken on the first junction cell; a left turn one cell further, so the car
crosses to the far lane. Route order per entry is IC3Net's: first decision straight, right,
left; within it the second decision straight, right, left. Route ids are
``entry * routes_per_entry + index``.

Cell ids (what a car sees, one-hot): road cells are numbered ``0, 1, ...`` road block by road
block, row-major within a block, a later block overwriting an earlier one at crossings;
every other cell, and the padding around the grid, is ``outside = base``; the car channel is
``base + 2``; the vocabulary has ``base + 3`` entries (``base`` = 12 / 56 / 144). In easy the
road numbering runs past ``base``, so the road cell at (5, 3) has the outside id 12 and the one
at (6, 3) has id 13 (IC3Net's quirk, kept).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from dcgenv import checks

STRAIGHT, RIGHT, LEFT = 0, 1, 2


class Level(NamedTuple):
    dim: int  # IC3Net's --dim
    num_agents: int
    max_steps: int
    vision: int
    add_rate: float  # fixed rate (MAGIC / DDCL setting)
    curriculum: tuple[float, float, int, int]  # add_rate_min, add_rate_max, curr_start, curr_end


# IC3Net README: --curr_start 250 --curr_end 1250 for every level. Its medium line says
# add_rate_max 0.02 (below add_rate_min, which would switch the curriculum off); the paper's
# range is 0.05 -> 0.2, used here.
LEVELS = {
    "easy": Level(6, 5, 20, 0, 0.3, (0.1, 0.3, 250, 1250)),
    "medium": Level(14, 10, 40, 1, 0.2, (0.05, 0.2, 250, 1250)),
    "hard": Level(18, 20, 80, 1, 0.05, (0.02, 0.05, 250, 1250)),
}


def get_level(level: str) -> Level:
    return LEVELS[checks.choice("TrafficJunction", "level", level, LEVELS)]


class Layout(NamedTuple):
    side: int  # grid side n
    cell_ids: np.ndarray  # int32 [n, n] what each cell shows (road id or outside)
    outside: int
    car_channel: int
    vocab: int
    routes: tuple[tuple[tuple[tuple[int, int], ...], ...], ...]  # [entry][route] -> cells


def _blocks(level: str, n: int) -> list[tuple[slice, slice]]:
    full = slice(0, n)
    if level == "easy":
        return [(slice(n // 2, n // 2 + 1), full), (full, slice(n // 2, n // 2 + 1))]
    if level == "medium":
        mid = slice(n // 2 - 1, n // 2 + 1)
        return [(mid, full), (full, mid)]
    a, b = slice(n // 3 - 2, n // 3), slice(2 * n // 3, 2 * n // 3 + 2)
    return [(a, full), (b, full), (full, a), (full, b)]


def _entries(level: str, n: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(first cell, heading) of each entry road, in IC3Net's order."""
    s, north, e, w = (1, 0), (-1, 0), (0, 1), (0, -1)
    if level == "easy":
        return [((0, n // 2), s), ((n // 2, 0), e)]
    if level == "medium":
        h = n // 2
        return [((0, h - 1), s), ((n - 1, h), north), ((h, 0), e), ((h - 1, n - 1), w)]
    t = n // 3
    return [((0, t - 2), s), ((0, 2 * t), s), ((t - 1, 0), e), ((2 * t + 1, 0), e),
            ((n - 1, t - 1), north), ((n - 1, 2 * t + 1), north),
            ((t - 2, n - 1), w), ((2 * t, n - 1), w)]


def _drive(start, heading, decisions, junction):
    """Cells of a route from ``start``; ``decisions`` apply to the junctions met, in order."""
    n = junction.shape[0]
    (r, c), (dr, dc) = start, heading
    path, met, pending_left = [(r, c)], 0, False
    while 0 <= r + dr < n and 0 <= c + dc < n:
        prev_junction = junction[r, c]
        r, c = r + dr, c + dc
        path.append((r, c))
        if pending_left:  # second junction cell: turn left now
            dr, dc, pending_left = -dc, dr, False
        elif junction[r, c] and not prev_junction:
            choice = decisions[met] if met < len(decisions) else STRAIGHT
            met += 1
            if choice == RIGHT:
                dr, dc = dc, -dr
            pending_left = choice == LEFT
    return tuple(path), met


@functools.cache
def build_layout(level: str) -> Layout:
    spec = get_level(level)
    n = spec.dim + 1 if level == "easy" else spec.dim
    base = {"easy": 1, "medium": 2, "hard": 4}[level] * 2 * spec.dim
    road = np.zeros((n, n), bool)
    count = np.zeros((n, n), int)
    ids = np.full((n, n), base, np.int32)
    start = 0
    for rows, cols in _blocks(level, n):
        size = ids[rows, cols].size
        ids[rows, cols] = np.arange(start, start + size).reshape(ids[rows, cols].shape)
        road[rows, cols] = True
        count[rows, cols] += 1
        start += size
    junction = count > 1
    first = (STRAIGHT,) if level == "easy" else (STRAIGHT, RIGHT, LEFT)
    second = {"easy": (STRAIGHT,), "medium": (STRAIGHT,), "hard": (STRAIGHT, RIGHT, LEFT)}[level]
    routes = []
    for cell, heading in _entries(level, n):
        paths = []
        for d1 in first:
            for d2 in second:
                path, met = _drive(cell, heading, (d1, d2), junction)
                assert all(road[p] for p in path)
                paths.append(path)
                if met < 2:  # one junction only: the second decision changes nothing
                    break
        routes.append(tuple(paths))
    assert len({len(p) for p in routes}) == 1, "every entry needs the same number of routes"
    return Layout(n, ids, base, base + 2, base + 3, tuple(routes))


@functools.cache
def curriculum_table(level: str) -> np.ndarray:
    """IC3Net's add_rate for epochs ``0 .. curr_end`` (float64, its exact arithmetic).

    IC3Net's env adds ``step = (max - min) / (end - start)`` to an exact rate once per new epoch
    ``e >= 1`` with ``start <= e < end`` (on the first reset of that epoch) and sets
    ``add_rate = 0.01 * (exact // 0.01)``; before the first update it is ``add_rate_min``.
    """
    lo, hi, start, end = get_level(level).curriculum
    step = (hi - lo) / (end - start)
    table = np.empty(end + 1)
    exact = rate = lo
    table[0] = rate
    for epoch in range(1, end + 1):
        if start <= epoch < end:
            exact = exact + step
            rate = 0.01 * (exact // 0.01)
        table[epoch] = rate
    return table
