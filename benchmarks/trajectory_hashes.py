"""sha256 of a random-policy rollout of every registered environment and observation mode.

A refactor that must not change any environment's behaviour is checked by hashing before and
after::

    python benchmarks/trajectory_hashes.py --out before.json        # on the old code
    python benchmarks/trajectory_hashes.py --compare before.json    # on the new code

Each entry hashes the bytes of every leaf of the trajectory (observations, actions, rewards,
terminated/truncated, info with ``final_observation``) and of the final state, for
``--num-envs`` environments over ``--num-steps`` steps from key 0 (auto-reset included).
Exit status 1 when ``--compare`` finds a difference.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import sys

import jax
import numpy as np

import dcgenv
from dcgenv.registry import _REGISTRY


def variants() -> list[tuple[str, str, dict]]:
    """(name, env id, overrides): every id, and every obs_mode of the ids that take one."""
    out = []
    for env_id in dcgenv.registered():
        out.append((env_id, env_id, {}))
        if "obs_mode" in inspect.signature(_REGISTRY[env_id].factory).parameters:
            out += [(f"{env_id}[{m}]", env_id, {"obs_mode": m}) for m in ("uint8", "index")]
    return out


def trajectory_hash(env_id: str, overrides: dict, num_envs: int, num_steps: int) -> str:
    env, params = dcgenv.make(env_id, **overrides)
    traj, (obs, state) = dcgenv.rollout(env, params, jax.random.key(0), num_envs=num_envs,
                                        num_steps=num_steps)
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves((traj, obs, state)):
        leaf = np.asarray(jax.random.key_data(leaf) if jax.dtypes.issubdtype(
            leaf.dtype, jax.dtypes.prng_key) else leaf)
        digest.update(f"{leaf.dtype}{leaf.shape}".encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--num-steps", type=int, default=300)
    parser.add_argument("--out", help="write the hashes to this JSON file")
    parser.add_argument("--compare", help="compare with the hashes in this JSON file")
    args = parser.parse_args(argv)
    hashes = {name: trajectory_hash(env_id, kw, args.num_envs, args.num_steps)
              for name, env_id, kw in variants()}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(hashes, f, indent=1, sort_keys=True)
    if not args.compare:
        for name, h in hashes.items():
            print(f"{h[:16]}  {name}")
        return 0
    with open(args.compare) as f:
        before = json.load(f)
    differ = 0
    for name in sorted(set(before) | set(hashes)):
        old, new = before.get(name, "missing"), hashes.get(name, "missing")
        same = old == new
        differ += not same
        print(f"{'same     ' if same else 'DIFFERENT'}  {name}")
    print(f"{len(hashes) - differ} of {len(set(before) | set(hashes))} identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
