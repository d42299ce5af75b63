"""Suite-wide setup: JAX's persistent compilation cache, shared by this session's tests.

Many tests build the same trainer more than once (a run, the same run interrupted and
resumed, its evaluation restored from a checkpoint); each build traces new Python closures, so
JAX's in-memory cache never hits, but the compiled programs are identical. The persistent cache
keys programs by their HLO, so every compile after the first is read back from disk. The cache
lives in this session's temporary directory (per xdist worker), never in the user's home, and
subprocesses started by tests inherit it through the environment.
"""

from __future__ import annotations

import os

import jax
import pytest


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("jax-cache"))
    settings = {"jax_compilation_cache_dir": path,
                "jax_persistent_cache_min_compile_time_secs": 1.0,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    before = {name: getattr(jax.config, name) for name in settings}
    env_before = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    for name, value in settings.items():
        jax.config.update(name, value)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    yield path
    for name, value in before.items():
        jax.config.update(name, value)
    if env_before is None:
        os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
    else:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = env_before
