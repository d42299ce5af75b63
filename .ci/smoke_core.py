"""Run by core_install.sh in a venv holding only the dcgenv wheel and its core dependencies.

Checks: the wheel holds nothing but the ``dcgenv`` package (with ``py.typed`` and the licence);
``import dcgenv`` works from outside the checkout without the learners' dependencies; every
registered environment resets and steps (8 environments x 8 steps, jitted) with finite outputs.
"""

import sys
import time
import zipfile
from pathlib import Path

repo, wheel = Path(sys.argv[1]).resolve(), sys.argv[2]

names = zipfile.ZipFile(wheel).namelist()
tops = {name.split("/")[0] for name in names}
assert all(top == "dcgenv" or top.endswith(".dist-info") for top in tops), tops
assert "dcgenv/py.typed" in names and any(n.endswith("licenses/LICENSE") for n in names)

start = time.perf_counter()
import jax  # noqa: E402
import numpy as np  # noqa: E402

import dcgenv  # noqa: E402

seconds = time.perf_counter() - start
assert repo not in Path(dcgenv.__file__).resolve().parents, dcgenv.__file__
heavy = sorted(m for m in ("agents", "baselines", "optax", "distrax", "orbax", "flashbax",
                           "seaborn", "matplotlib", "pandas", "scipy", "constriction")
          if m in sys.modules)
assert not heavy, f"import dcgenv imported {heavy}"

for env_id in dcgenv.registered():
    env, params = dcgenv.make(env_id)
    traj, _ = dcgenv.rollout(env, params, jax.random.key(0), num_envs=8, num_steps=8)
    for leaf in jax.tree.leaves((traj.obs, traj.reward, traj.info)):
        leaf = np.asarray(leaf)
        assert not np.issubdtype(leaf.dtype, np.floating) or np.isfinite(leaf).all(), env_id
    assert traj.reward.shape == (8, 8, env.num_agents), (env_id, traj.reward.shape)
print(f"core install OK: {len(names)} files in the wheel, import dcgenv {seconds:.2f} s, "
      f"{len(dcgenv.registered())} environments stepped")
