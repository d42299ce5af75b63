"""Smoke tests of benchmarks/throughput.py: tiny sizes, seconds not minutes."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput_benchmark", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finite_positive(row: dict, keys) -> None:
    for k in keys:
        assert math.isfinite(row[k]) and row[k] > 0, (k, row[k])


def test_bandwidth(throughput):
    bw = throughput.measure_bandwidth(size_mib=4, repeats=2)
    assert bw["bytes_moved"] == 2 * 4 * 2**20
    _finite_positive(bw, ["bytes_per_s", "seconds", "median_bytes_per_s"])
    assert bw["median_bytes_per_s"] <= bw["bytes_per_s"]


def test_measure_env_with_reset_variants(throughput):
    r, reset = throughput.measure_env("Rubinstein-v0", num_envs=4, num_steps=3, repeats=1,
                                      bandwidth=1e10, reset_variants=True,
                                      reset_ratio=0.5, optimistic_mode="all")
    _finite_positive(r, ["env_steps_per_s", "agent_steps_per_s", "bytes_per_env_step",
                         "mem_floor_env_steps_per_s", "null_env_steps_per_s"])
    assert r["agent_steps_per_s"] == pytest.approx(r["env_steps_per_s"] * r["agents"])
    assert r["mem_floor_env_steps_per_s"] == pytest.approx(1e10 / r["bytes_per_env_step"])
    assert reset["num_resets"] == 2 and reset["reset_share"] < 1.0
    _finite_positive(reset, ["no_reset_env_steps_per_s", "optimistic_env_steps_per_s"])


def test_null_env_keeps_its_work(throughput):
    """The null env's carry depends on the keys and the actions (nothing optimised away)."""
    import jax

    import dcgenv

    env, params = dcgenv.make("Rubinstein-v0")
    init, run = throughput.make_run(*throughput.null_env(env, params, 3), 3, 2)
    a = run(init(jax.random.key(0)), jax.random.key(1))
    b = run(init(jax.random.key(0)), jax.random.key(2))
    assert a.shape == (3,) and bool((a != b).any())


def test_main_writes_json(throughput, tmp_path):
    out = tmp_path / "t.json"
    throughput.main(["--env", "Witsenhausen-v0", "--num-envs", "2", "--num-steps", "2",
                     "--repeats", "1", "--reset-num-envs", "2", "--optimistic", "none",
                     "--no-peers", "--bandwidth-mib", "4", "--out", str(out)])
    data = json.loads(out.read_text())
    assert {"jax", "device", "cpu_model", "cpu_cores", "date", "command",
            "bandwidth"} <= set(data["meta"])
    assert [r["env"] for r in data["rows"]] == ["Witsenhausen-v0"]
    assert data["reset_rows"][0]["num_envs"] == 2
    table = throughput.markdown(data)
    assert "| Witsenhausen-v0 | 2 |" in table and "reset share" in table


def test_floor_table_verdicts_at_the_largest_n(throughput):
    def r(env, n, mem, null, meas):
        return {"env": env, "num_envs": n, "bytes_per_env_step": 100,
                "mem_floor_env_steps_per_s": mem, "null_env_steps_per_s": null,
                "measured_over_mem_floor": meas / mem}

    rows = [r("A", 8, 100.0, 1.0, 90.0),  # small N: met, but not the row that counts
            r("A", 64, 100.0, 40.0, 30.0), r("B", 64, 100.0, 60.0, 30.0),
            r("C", 64, 100.0, 200.0, 60.0)]
    table = "\n".join(throughput.floor_table(rows))
    assert "| A | 64 |" in table and "| A | 8 |" not in table
    assert "| A | 64 | 100 | 100 | 40 | 0.4 | 0.3 | no; out of reach" in table
    assert "| B | 64 | 100 | 100 | 60 | 0.6 | 0.3 | no; reachable" in table
    assert "| C | 64 | 100 | 100 | 200 | 2 | 0.6 | yes |" in table


def test_peer_cartpole(throughput):
    pytest.importorskip("gymnax")
    r, reset = throughput.measure_peer("gymnax:CartPole-v1", num_envs=2, num_steps=2,
                                       repeats=1, bandwidth=1e10, reset_variants=True)
    assert r["agents"] == 1 and r["bytes_per_env_step"] > 0
    assert "reset_share" in reset
