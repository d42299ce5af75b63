"""Suite-wide setup: fast XLA compiles, and JAX's persistent compilation cache shared by all of
this session's tests.

On CPU most of the suite's time is XLA compiling small programs that then run for
milliseconds. ``FAST_COMPILE`` turns XLA's CPU code generation down (LLVM's optimisations off,
the older loop emitters for fusions instead of the newer MLIR ones): compiles are 5-10x faster
and the suite's small programs run about as fast. They compute the same things, though not
always to the same last bit as another program holding the same step; the tests that compare
such programs bit for bit compile them at level 1 (test_conformance.py), as do the few that
run long. It goes into ``XLA_FLAGS`` before JAX starts its backend; subprocesses inherit it.

Many tests build the same trainer more than once (a run, the same run interrupted and
resumed, its evaluation restored from a checkpoint); each build traces new Python closures, so
JAX's in-memory cache never hits, but the compiled programs are identical. The persistent cache
keys programs by their HLO, so every compile after the first is read back from disk. The cache
lives in this session's temporary directory, one for all xdist workers (one worker reads what
another compiled), never in the user's home; subprocesses inherit it through the environment.
"""

from __future__ import annotations

import os

import jax
import pytest

# Under -n, the tests of each of these modules go to one worker: they share expensive module
# fixtures, which xdist's default (spreading a module's tests over the workers) would build on
# each worker. The two "default run" modules train the same run: compiled once, then cached.
ONE_WORKER = {"tests/test_baselines_train.py": "default run", "tests/test_sharding.py":
              "default run", "tests/test_faults.py": "faults",
              "tests/test_train_command.py": "train command"}

FAST_COMPILE = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
                "--xla_cpu_use_fusion_emitters=false")
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()  # under xdist: <session dir>/popen-gwN, per worker
    path = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "jax-cache"
    path.mkdir(exist_ok=True)
    settings = {"jax_compilation_cache_dir": str(path),
                "jax_persistent_cache_min_compile_time_secs": 0.2,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    before = {name: getattr(jax.config, name) for name in settings}
    env_before = {name: os.environ.get(name.upper()) for name in settings}
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)
    yield str(path)
    for name, value in before.items():
        jax.config.update(name, value)
        if env_before[name] is None:
            os.environ.pop(name.upper(), None)
        else:
            os.environ[name.upper()] = env_before[name]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``-n``'s test-by-test load balancing, except for the ``ONE_WORKER`` modules."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):  # a work unit per test, or per ONE_WORKER value
        def _split_scope(self, nodeid):
            return ONE_WORKER.get(nodeid.split("::")[0], nodeid)

    return Scheduling(config, log)
