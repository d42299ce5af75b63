"""Orbax checkpoints of a training run: state, config and metrics, under ``DIR/checkpoints``.

Each step (the number of updates done) holds three items: ``state`` (the seed-batched
``Runner`` and the update index; PRNG keys stored as their raw data), ``config`` and
``metrics`` (one JSON row per update so far). :func:`restore` never loads silently: a missing
directory, no finished step, a config that differs from the one asked for, or a state whose
structure, shapes or dtypes differ raise ``CheckpointError`` naming the problem.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from agents.config import Config


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, partial or not matching the run."""


def manager(run_dir: str | Path, *, create: bool = True) -> ocp.CheckpointManager:
    path = Path(run_dir).resolve() / "checkpoints"
    options = ocp.CheckpointManagerOptions(create=create, max_to_keep=3)
    return ocp.CheckpointManager(path, options=options, item_names=("state", "config", "metrics"))


def _to_disk(state):
    runners, i = state
    return {"runner": runners._replace(key=jax.random.key_data(runners.key)), "update": i}


def _from_disk(tree):
    runner = tree["runner"]
    return runner._replace(key=jax.random.wrap_key_data(runner.key)), tree["update"]


def save(mgr: ocp.CheckpointManager, state, config: Config, metrics: list[dict]) -> None:
    step = int(state[1])
    mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_to_disk(state)),
                                           config=ocp.args.JsonSave(config.to_dict()),
                                           metrics=ocp.args.JsonSave(metrics)))


def saved_config(run_dir: str | Path) -> tuple[int, Config]:
    """``(latest step, its config)``; ``CheckpointError`` if there is none."""
    with _latest(run_dir) as (step, mgr):
        return step, _config(run_dir, step, mgr)


@contextlib.contextmanager
def _latest(run_dir):
    """``(latest finished step, manager)`` of ``run_dir``; the manager is closed on exit."""
    path = Path(run_dir)
    if not (path / "checkpoints").is_dir():
        raise CheckpointError(f"no checkpoint directory {str(path / 'checkpoints')!r}: "
                              "pass the run directory that training wrote")
    mgr = manager(path, create=False)
    try:
        step = mgr.latest_step()
        if step is None:
            raise CheckpointError(f"{str(path)!r} holds no finished checkpoint (partial or "
                                  "interrupted writes are never loaded)")
        yield step, mgr
    finally:
        mgr.close()


def _config(run_dir, step: int, mgr) -> Config:
    try:
        values = mgr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
        return Config.from_dict(values["config"])
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint step {step} in {str(run_dir)!r} is incomplete or "
                              f"unreadable (config): {err}") from None


def restore(run_dir: str | Path, config: Config, like) -> tuple[Any, list[dict]]:
    """Restore the latest step into the structure of ``like`` (a state built from ``config``,
    or its ``jax.eval_shape``); returns ``(state, metrics rows)``."""
    with _latest(run_dir) as (step, mgr):
        return _restore(run_dir, config, like, step, mgr)


def check_config(run_dir: str | Path, config: Config) -> None:
    """``CheckpointError`` unless ``run_dir``'s latest checkpoint was written with ``config``."""
    _, saved = saved_config(run_dir)
    _same(run_dir, saved, config)


def _same(run_dir, saved: Config, config: Config) -> None:
    if saved != config:
        diff = {k: (v, getattr(config, k)) for k, v in saved.to_dict().items()
                if v != getattr(config, k)}
        raise CheckpointError(f"checkpoint in {str(run_dir)!r} was written with another config; "
                              f"differences (saved, requested): {diff}")


def _placed(target, like):
    """``target`` with the shardings of ``like``'s arrays (its ``ShapeDtypeStruct``s: one
    local device), so a checkpoint saved on N devices restores onto the devices asked for."""
    runners, i = like
    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda t, x: jax.ShapeDtypeStruct(
        t.shape, t.dtype, sharding=getattr(x, "sharding", None) or one),
        target, {"runner": runners, "update": i})


def _restore(run_dir, config: Config, like, step: int, mgr):
    _same(run_dir, _config(run_dir, step, mgr), config)
    target = _placed(jax.eval_shape(_to_disk, like), like)
    try:
        values = mgr.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), metrics=ocp.args.JsonRestore()))
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint step {step} in {str(run_dir)!r} does not match this "
                              f"run or is incomplete: {err}") from None
    if int(values["state"]["update"]) != step or len(values["metrics"]) != step:
        raise CheckpointError(f"checkpoint step {step} in {str(run_dir)!r} is inconsistent: "
                              f"state at update {int(values['state']['update'])}, "
                              f"{len(values['metrics'])} metric rows")
    return _from_disk(values["state"]), values["metrics"]
