"""Rerun any row of RESULTS.md: ``python -m baselines.reproduce ROW --budget smoke|cpu|full``.

    python -m baselines.reproduce --list
    python -m baselines.reproduce referential_estimators --budget cpu
    python -m baselines.reproduce rubinstein --budget smoke --out /tmp/results

Each row is one entry of :data:`ROWS`, a name mapped to a function ``(budget, out_dir) ->
result dict`` that lives in the row's own module (``baselines/<module>.py``, its function
``reproduce``). A row reads its settings from ``configs/results/<row>_<budget>.yaml``
(:func:`load_config`) and writes, through :func:`write_result`, one JSON under ``out_dir``
(``<row>.json`` for the ``cpu`` budget, which RESULTS.md reports; ``<row>_<budget>.json``
otherwise) holding the row, budget, config, command, wall time, env steps, the machine
(``platform.processor()``, CPU count, JAX backend and devices) and the row's results, plus a
figure (under ``docs/images/`` when ``out_dir`` is the default, else beside the JSON).

Budgets: ``smoke`` runs in seconds (the test suite runs it), ``cpu`` is what RESULTS.md
reports (about 10 minutes or less per row on the project's 2-core CPU), ``full`` is sized for
one GPU. To add a row: write its module with ``reproduce(budget, out_dir)``, its three
configs, and one line in :data:`ROWS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "results"
RESULTS = ROOT / "baselines" / "results"
IMAGES = ROOT / "docs" / "images"
BUDGETS = ("smoke", "cpu", "full")


def _row(module: str) -> Callable[[str, Path], dict]:
    """The ``reproduce`` function of ``baselines.<module>``, imported when the row runs."""
    def run(budget: str, out_dir: Path) -> dict:
        return importlib.import_module(f"baselines.{module}").reproduce(budget, out_dir)
    run.__doc__ = f"baselines/{module}.py: reproduce(budget, out_dir)"
    return run


def _grid_row(row: str) -> Callable[[str, Path], dict]:
    """A row of ``baselines/comm_grid.py``: one environment family under several channels."""
    def run(budget: str, out_dir: Path) -> dict:
        return importlib.import_module("baselines.comm_grid").reproduce(row, budget, out_dir)
    run.__doc__ = f"baselines/comm_grid.py: reproduce({row!r}, budget, out_dir)"
    return run


def _iql_row(row: str) -> Callable[[str, Path], dict]:
    """A row of ``baselines/iql_grid.py``: arXiv 2401.15059's IQL grid on one environment."""
    def run(budget: str, out_dir: Path) -> dict:
        return importlib.import_module("baselines.iql_grid").reproduce(row, budget, out_dir)
    run.__doc__ = f"baselines/iql_grid.py: reproduce({row!r}, budget, out_dir)"
    return run


# one entry per RESULTS.md row: name -> function(budget, out_dir) -> result dict
ROWS: dict[str, Callable[[str, Path], dict]] = {
    "attention_ablation": _row("attention_ablation"),
    "gridworld_ddcl": _row("gridworld_ddcl"),
    "referential_estimators": _row("referential_estimators"),
    "rubinstein": _row("rubinstein"),
    "attention_referential": _row("attention_referential"),
    "attention_negotiation": _row("attention_negotiation"),
    "negotiation": _row("negotiation"),
    "tj_ddcl": _grid_row("tj_ddcl"),
    "pp_ddcl": _grid_row("pp_ddcl"),
    "pp_mappo": _grid_row("pp_mappo"),
    "iql_magym": _iql_row("iql_magym"),
    "iql_smax": _iql_row("iql_smax"),
}


def check_row(row: str) -> str:
    if row not in ROWS:
        raise ValueError(f"baselines.reproduce: unknown row {row!r}; allowed: "
                         f"{', '.join(ROWS)}")
    return row


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise ValueError(f"baselines.reproduce: unknown budget {budget!r}; allowed: "
                         f"{', '.join(BUDGETS)}")
    return budget


def load_config(row: str, budget: str, cls: type) -> Any:
    """``cls(**configs/results/<row>_<budget>.yaml)``; lists become tuples, and a key that is
    not a field of ``cls`` is a ValueError naming the allowed keys."""
    return load_yaml(CONFIGS / f"{check_row(row)}_{check_budget(budget)}.yaml", cls)


def load_yaml(path: Path, cls: type) -> Any:
    """``cls(**path)`` for a YAML file of ``cls``'s fields, as :func:`load_config` reads a
    row's config (a variant's config too); lists become tuples, and an unknown key is a
    ValueError naming the allowed keys."""
    data = yaml.safe_load(path.read_text()) or {}
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"{path.name}: unknown key(s) {unknown}; allowed: {', '.join(allowed)}")
    tup = lambda v: tuple(tup(x) for x in v) if isinstance(v, list) else v
    return cls(**{k: tup(v) for k, v in data.items()})


def machine() -> dict[str, Any]:
    """Where a result was measured."""
    import jax
    return {"processor": platform.processor() or platform.machine(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "jax_backend": jax.default_backend(), "jax_version": jax.__version__,
            "devices": [str(d) for d in jax.devices()], "python": platform.python_version()}


def stem(row: str, budget: str) -> str:
    """File name stem of a run: ``<row>`` for the ``cpu`` budget, else ``<row>_<budget>``."""
    return row if budget == "cpu" else f"{row}_{budget}"


def figure_path(row: str, budget: str, out_dir: Path) -> Path:
    """``docs/images/<stem>.png`` for the default ``out_dir``, else ``out_dir/<stem>.png``."""
    folder = IMAGES if Path(out_dir).resolve() == RESULTS.resolve() else Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stem(row, budget)}.png"


def _relative(path: Path) -> str:
    """``path`` relative to the repository root where it lies inside it."""
    path = Path(path)
    return str(path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path)


def write_result(row: str, budget: str, out_dir: Path, config: Any, result: dict,
                 wall_s: float, env_steps: int, figure: Path | None) -> dict:
    """The run's JSON (documented keys: row, budget, command, config, wall_s, env_steps,
    machine, figure, result) at ``out_dir/<stem>.json``; returns it."""
    record = {"row": row, "budget": budget,
              "command": f"python -m baselines.reproduce {row} --budget {budget}",
              "config": dataclasses.asdict(config), "wall_s": wall_s, "env_steps": env_steps,
              "machine": machine(), "figure": None if figure is None else _relative(figure),
              "result": result,
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem(row, budget)}.json"
    path.write_text(json.dumps(record, indent=2))
    record["path"] = str(path)
    return record


def run_row(row: str, budget: str, out_dir: Path, cls: type, run: Callable[[Any], dict],
            plot: Callable[[dict, Path], None], table: Callable[[dict, Any], str],
            env_steps: Callable[[dict], int]) -> dict:
    """What every row's ``reproduce`` does: its config (:func:`load_config` into ``cls``),
    ``run(config) -> result`` timed, ``plot(result, path)`` to :func:`figure_path`,
    ``table(result, config)`` printed and kept as ``result["table"]`` (a ``plot`` that draws
    several figures returns their paths: ``result["figures"]``, the first one the record's
    ``figure``; none drawn: ``figure`` is null), then
    :func:`write_result` with ``env_steps(result)``."""
    config = load_config(row, budget, cls)
    start = time.perf_counter()
    result = run(config)
    wall = time.perf_counter() - start
    figure = figure_path(row, budget, out_dir)
    written = plot(result, figure)  # a row drawing several figures returns their paths
    if isinstance(written, list):
        result["figures"] = [_relative(p) for p in written]
        figure = written[0] if written else None
    result["table"] = table(result, config)
    print(result["table"])
    return write_result(row, budget, out_dir, config, result, wall, env_steps(result), figure)


def reproduce(row: str, budget: str = "cpu", out_dir: str | Path = RESULTS) -> dict:
    """Run one row at one budget; returns the record written."""
    return ROWS[check_row(row)](check_budget(budget), Path(out_dir))


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", nargs="?", help=f"one of: {', '.join(ROWS)}")
    parser.add_argument("--budget", default="cpu", help=f"one of: {', '.join(BUDGETS)}")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON")
    parser.add_argument("--list", action="store_true", help="print the rows and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, fn in ROWS.items():
            print(f"{name:24s} {fn.__doc__}")
        return None
    if args.row is None:
        parser.error(f"a row is needed; allowed: {', '.join(ROWS)} (or --list)")
    try:
        check_row(args.row)
        check_budget(args.budget)
    except ValueError as err:
        parser.error(str(err))
    record = reproduce(args.row, args.budget, args.out)
    print(f"wrote {record['path']} ({record['wall_s']:.0f} s, {record['env_steps']:,} env steps)",
          file=sys.stderr)
    return record


if __name__ == "__main__":
    main()
