"""Orbax checkpoints of a training run: state, config and metrics, under ``DIR/checkpoints``.

Each step (the number of updates done) holds three items: ``state`` (the
``agents.loop.TrainState``: seed-batched runners and the update index; typed PRNG keys stored
as their raw data), ``config`` (``{"format": FORMAT, "config": {...}}``) and ``metrics`` (one
JSON row per update so far). :func:`restore` never loads silently: a missing directory, no
finished step, a checkpoint of another format (written before the per-algorithm configs), a
config that differs from the one asked for, or a state whose structure, shapes or dtypes
differ raise ``CheckpointError`` naming the problem.

A write cut short (the process killed while orbax writes ``<step>.orbax-checkpoint-tmp``) is
never listed as a step; a finished step whose files were damaged afterwards (truncated, deleted
or overwritten) raises ``DamagedCheckpoint``, one line naming the run, the step and the file or
data at fault (:func:`verify`, run before orbax reads anything).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import jax
import orbax.checkpoint as ocp
import tensorstore as ts

from agents.config import Config
from agents.loop import TrainState

FORMAT = 2  # 2: per-algorithm configs and TrainState; 1 (no marker): one flat config, a tuple


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, partial or not matching the run."""


class DamagedCheckpoint(CheckpointError):
    """A finished step whose files are missing, truncated or unreadable."""


def manager(run_dir: str | Path, *, create: bool = True) -> ocp.CheckpointManager:
    path = Path(run_dir).resolve() / "checkpoints"
    # a writer removes the temporary directories of writes cut short (they are never read);
    # lightweight: list the steps without reading their files (orbax would parse each step's
    # "metrics" item, our metric rows, as its own: slow, and a damaged one would stop it)
    options = ocp.CheckpointManagerOptions(create=create, max_to_keep=3,
                                           cleanup_tmp_directories=create,
                                           lightweight_initialize=True)
    return ocp.CheckpointManager(path, options=options, item_names=("state", "config", "metrics"))


def steps(run_dir: str | Path) -> list[int]:
    """The finished steps of ``run_dir``, oldest first; [] if it has no checkpoints directory.
    Orbax writes a step into ``<step>.orbax-checkpoint-tmp`` and renames it once complete, so a
    write cut short is never listed."""
    if not (Path(run_dir) / "checkpoints").is_dir():
        return []
    mgr = manager(run_dir, create=False)
    try:
        return sorted(mgr.all_steps())
    finally:
        mgr.close()


def latest_step(run_dir: str | Path) -> int | None:
    """The newest finished step of ``run_dir``, or None if there is none (or no directory)."""
    done = steps(run_dir)
    return done[-1] if done else None


def _short(err, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _damaged(run_dir, step: int, what: str, err=None) -> DamagedCheckpoint:
    here = f"{Path(run_dir) / 'checkpoints' / str(step)}/"  # file names relative to the step
    detail = f" ({_short(str(err).replace(here, ''))})" if err is not None else ""
    return DamagedCheckpoint(f"checkpoint step {step} of run {str(run_dir)!r} is damaged: "
                             f"{what}{detail}")


ARRAYS = ("jax.Array", "np.ndarray", "scalar")  # value types orbax stores as zarr arrays


def verify(run_dir: str | Path, step: int) -> None:
    """``DamagedCheckpoint`` naming the first fault unless step ``step`` of ``run_dir`` is
    intact: its JSON files parse, the state's manifest lists every array and every stored
    value is there in full (its last byte reads back). Reads no array data besides."""
    path = Path(run_dir) / "checkpoints" / str(step)
    files = ["config/metadata", "metrics/metrics", "state/_METADATA"]
    optional = [path / "_CHECKPOINT_METADATA", path / "state" / "_sharding",
                *sorted((path / "state" / "array_metadatas").glob("*"))]
    files += [f.relative_to(path).as_posix() for f in optional if f.exists()]
    parsed = {}
    for name in files:
        try:
            parsed[name] = json.loads((path / name).read_bytes())
        except FileNotFoundError:
            raise _damaged(run_dir, step, f"{name} is missing") from None
        except (OSError, ValueError) as err:
            raise _damaged(run_dir, step, f"{name} is not valid JSON (truncated or "
                           "overwritten)", err) from None
    meta = parsed["state/_METADATA"]
    try:
        arrays = {".".join(str(k["key"]) for k in v["key_metadata"])
                  for v in meta["tree_metadata"].values()
                  if v["value_metadata"]["value_type"] in ARRAYS
                  and not v["value_metadata"].get("skip_deserialize")}
    except (KeyError, TypeError, AttributeError) as err:
        raise _damaged(run_dir, step, "state/_METADATA does not describe a state", err) from None
    if meta.get("use_ocdbt", True):
        _verify_ocdbt(run_dir, step, path / "state", arrays, meta.get("use_zarr3", False))


def _verify_ocdbt(run_dir, step: int, state: Path, arrays: set[str], zarr3: bool) -> None:
    if not (state / "manifest.ocdbt").is_file():
        raise _damaged(run_dir, step, "the state's manifest (state/manifest.ocdbt) is missing")
    spec = {"driver": "ocdbt", "base": {"driver": "file", "path": f"{state}/"}}
    marker = b"/zarr.json" if zarr3 else b"/.zarray"
    try:  # a fresh context: nothing cached from an earlier look at these files
        kv = ts.KvStore.open(spec, context=ts.Context()).result()
        keys = kv.list().result()
        reads = [kv.read(key, byte_range=slice(-1, None)) for key in keys]
        for read in reads:
            read.result()
    except (ValueError, OSError, RuntimeError) as err:
        raise _damaged(run_dir, step, "state data truncated or missing", err) from None
    missing = sorted(arrays - {k[: -len(marker)].decode() for k in keys if k.endswith(marker)})
    if missing:
        raise _damaged(run_dir, step, f"state data missing for {len(missing)} of {len(arrays)} "
                       f"arrays (first: {missing[0]}): the state's manifest or data files are "
                       "truncated or missing")


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
    """Start writing step ``state.update`` (asynchronously: ``mgr.wait_until_finished()``
    waits for it) with ``config`` and the metric rows as they are at this call."""
    saved = {"format": FORMAT, "config": config.to_dict()}
    # orbax writes the JSON items in the background: a copy of the rows as they are now, as
    # the caller goes on appending to its list (the step would hold rows of later updates)
    rows = [dict(row) for row in metrics]
    mgr.save(int(state.update), args=ocp.args.Composite(
        state=ocp.args.StandardSave(_to_disk(state)), config=ocp.args.JsonSave(saved),
        metrics=ocp.args.JsonSave(rows)))


def saved_config(run_dir: str | Path, step: int | None = None) -> tuple[int, Config]:
    """``(step, its config)``: ``step``, by default the latest finished one, checked intact
    (:func:`verify`); ``CheckpointError`` if there is none."""
    with _opened(run_dir, step) as (step, mgr):
        return step, _config(run_dir, step, mgr)


@contextlib.contextmanager
def _opened(run_dir, step: int | None = None):
    """``(step, manager)`` of ``run_dir``: ``step`` (default: the latest finished one), checked
    intact; the manager is closed on exit."""
    path = Path(run_dir)
    if not (path / "checkpoints").is_dir():
        raise CheckpointError(f"no checkpoint directory {str(path / 'checkpoints')!r}: "
                              "pass the run directory that training wrote")
    mgr = manager(path, create=False)
    try:
        done = sorted(mgr.all_steps())
        if not done:
            raise CheckpointError(f"{str(path)!r} holds no finished checkpoint (partial or "
                                  "interrupted writes are never loaded)")
        if step is None:
            step = done[-1]
        elif step not in done:
            raise CheckpointError(f"{str(path)!r} has no finished checkpoint step {step}; its "
                                  f"finished steps: {done}")
        verify(path, step)
        yield step, mgr
    finally:
        mgr.close()


def _config(run_dir, step: int, mgr) -> Config:
    try:
        saved = mgr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
        saved = saved["config"]
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint step {step} in {str(run_dir)!r} is incomplete or "
                              f"unreadable (config): {_short(err)}") from None
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
                              f"code does not accept: {_short(err)}") from None


def restore(run_dir: str | Path, config: Config, like: TrainState,
            step: int | None = None) -> tuple[TrainState, list[dict]]:
    """Restore ``step`` (default: the latest finished one) into the structure of ``like`` (a
    state built from ``config``, or its ``jax.eval_shape``); returns ``(state, metrics rows)``."""
    with _opened(run_dir, step) as (step, mgr):
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
                              f"run or is incomplete: {_short(err)}") from None
    if int(values["state"]["update"]) != step or len(values["metrics"]) != step:
        raise CheckpointError(f"checkpoint step {step} in {str(run_dir)!r} is inconsistent: "
                              f"state at update {int(values['state']['update'])}, "
                              f"{len(values['metrics'])} metric rows")
    return _from_disk(values["state"], like), values["metrics"]
