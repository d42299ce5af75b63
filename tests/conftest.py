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

# Under -n, the tests whose node ids start with one of these go to one worker: they share
# expensive module fixtures or cached runs, which xdist's default (spreading a module's tests
# over the workers) would build on each worker. The two "default run" modules train the same
# run: compiled once, then cached; the two IQL tests share the plain run of ``_train()``.
ONE_WORKER = {"tests/test_baselines_train.py": "default run", "tests/test_sharding.py":
              "default run", "tests/test_faults.py": "faults",
              "tests/test_train_command.py": "train command",
              "tests/test_agents_iql.py::test_learn_start_": "iql runs",
              "tests/test_agents_iql.py::test_evaluation_during_training": "iql runs"}

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


# The suite's longest tests (``--durations``, 2-core machine), started first under ``-n`` so the
# last minutes are not one of them running alone on one worker while the other worker idles.
# A prefix matches every parametrisation. Only the order changes; a stale entry costs nothing.
SLOW_FIRST = (
    "tests/test_iql_rows.py::test_smoke_budget_trains_every_config_end_to_end",
    "tests/test_agents_iql.py::test_iql_through_the_train_command_resumes_bit_for_bit",
    "tests/test_comm_grid.py::test_smoke_budget_trains_every_cell_end_to_end",
    "tests/test_attention_ablation.py::test_smoke_budget_end_to_end",
    "tests/test_benchmarks_training.py::test_accelerator_script_runs_at_tiny_sizes",
    "tests/test_reproduce.py::test_smoke_gridworld",
    "tests/test_params.py::test_traced_out_of_range_params",
    "tests/test_agents_mappo.py::test_updates_run_and_lower_the_loss_on_their_batch",
    "tests/test_comms_entropy.py::test_range_coding_round_trips",
    "tests/test_agents_iql.py::test_paper_configs_train_a_few_iterations",
    "tests/test_reproduce.py::test_smoke_referential",
    "tests/test_optimistic_reset.py::test_episode_statistics_unchanged",
    "tests/test_agents_mappo.py::test_make_train_compiles_whole",
    "tests/test_compact_obs.py::test_expand_obs_recovers_onehot_bit_for_bit",
    "tests/test_properties.py::test_invariants_under_adversarial_actions",
    "tests/test_agents_entropy.py::test_iql_nps_trains_the_shared_gated_channel",
    "tests/test_witsenhausen_reference.py::test_monte_carlo_through_the_env",
    "tests/test_predator_prey_parity.py::test_magym_matches_original",
    "tests/test_agents_iql.py::test_loss_and_gradients_match_a_step_by_step_reference",
    "tests/test_obs_embedding.py::test_embedded_networks_equal_the_onehot_networks",
    "tests/test_docs.py::test_python_blocks_run",
    "tests/test_obs_embedding.py::test_mappo_trains_on_embedded_index_observations",
    "tests/test_witsenhausen_solver.py::test_training_through_the_env_beats_best_affine",
    "tests/test_referential.py::test_gradient_training_reaches_95_percent",
)


def pytest_collection_modifyitems(config, items):
    """Longest tests first (``SLOW_FIRST``), the rest in collection order.

    Under ``-n`` every worker must collect the same list in the same order; this is a stable,
    deterministic sort, so they do. Without ``-n`` the order is left alone, so that a module's
    fixtures are built once. xdist's scheduler hands out the ``ONE_WORKER`` groups first
    (it orders work units by size), then single tests in this order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: keep modules together
        return

    def rank(item):
        ids = [i for i, prefix in enumerate(SLOW_FIRST) if item.nodeid.startswith(prefix)]
        return ids[0] if ids else len(SLOW_FIRST)

    items[:] = sorted(items, key=rank)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``-n``'s test-by-test load balancing, except for the ``ONE_WORKER`` groups."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):  # a work unit per test, or per ONE_WORKER value
        def _split_scope(self, nodeid):
            return next((group for prefix, group in ONE_WORKER.items()
                         if nodeid.startswith(prefix)), nodeid)

    return Scheduling(config, log)
