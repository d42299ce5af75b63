"""Orbax checkpoints of a training run: state, config and metrics, under ``DIR/checkpoints``.

Each step (the number of updates done) holds three items: ``state`` (the
``agents.loop.TrainState``: seed-batched runners and the update index; typed PRNG keys stored
as their raw data), ``config`` (``{"format": FORMAT, "config": {...}}``) and ``metrics`` (one
JSON row per update so far). :func:`restore` never loads silently: a missing directory, no
finished step, a checkpoint of another format (written before the per-algorithm configs), a
config that differs from the one asked for, or a state whose structure, shapes or dtypes
differ raise ``CheckpointError`` naming the problem.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from agents.config import Config
from agents.loop import TrainState

FORMAT = 2  # 2: per-algorithm configs and TrainState; 1 (no marker): one flat config, a tuple


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, partial or not matching the run."""


def manager(run_dir: str | Path, *, create: bool = True) -> ocp.CheckpointManager:
    path = Path(run_dir).resolve() / "checkpoints"
    options = ocp.CheckpointManagerOptions(create=create, max_to_keep=3)
    return ocp.CheckpointManager(path, options=options, item_names=("state", "config", "metrics"))


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_disk(state: TrainState) -> dict:
    raw = lambda x: jax.random.key_data(x) if _is_key(x) else x
    return {"runners": jax.tree.map(raw, state.runners), "update": state.update}


def _from_disk(tree: dict, like: TrainState) -> TrainState:
    typed = lambda x, ref: jax.random.wrap_key_data(x) if _is_key(ref) else x
    return TrainState(jax.tree.map(typed, tree["runners"], like.runners), tree["update"])


def save(mgr: ocp.CheckpointManager, state: TrainState, config: Config,
         metrics: list[dict]) -> None:
    saved = {"format": FORMAT, "config": config.to_dict()}
    mgr.save(int(state.update), args=ocp.args.Composite(
        state=ocp.args.StandardSave(_to_disk(state)), config=ocp.args.JsonSave(saved),
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
        saved = mgr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
        saved = saved["config"]
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint step {step} in {str(run_dir)!r} is incomplete or "
                              f"unreadable (config): {err}") from None
    found = saved.get("format", 1) if isinstance(saved, dict) else None
    if found != FORMAT:
        raise CheckpointError(f"checkpoint in {str(run_dir)!r} has format {found}; this code "
                              f"reads format {FORMAT} (per-algorithm configs, a named "
                              "TrainState), so it cannot be resumed or evaluated here: train "
                              "again, or use the version of the code that wrote it")
    try:
        return Config.from_dict(saved["config"])
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint step {step} in {str(run_dir)!r} holds a config this "
                              f"code does not accept: {err}") from None


def restore(run_dir: str | Path, config: Config,
            like: TrainState) -> tuple[TrainState, list[dict]]:
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
        old, new = saved.to_dict(), config.to_dict()
        diff = {k: (old.get(k), new.get(k)) for k in {**old, **new} if old.get(k) != new.get(k)}
        raise CheckpointError(f"checkpoint in {str(run_dir)!r} was written with another config; "
                              f"differences (saved, requested): {diff}")


def _placed(target, like: TrainState):
    """``target`` with the shardings of ``like``'s arrays (its ``ShapeDtypeStruct``s: one
    local device), so a checkpoint saved on N devices restores onto the devices asked for."""
    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda t, x: jax.ShapeDtypeStruct(
        t.shape, t.dtype, sharding=getattr(x, "sharding", None) or one),
        target, {"runners": like.runners, "update": like.update})


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
    return _from_disk(values["state"], like), values["metrics"]
