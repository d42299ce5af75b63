"""Configs and the CLI: every shipped YAML loads; bad keys and values stop with a clear error
naming the key and the allowed values, before anything is built or compiled."""

from pathlib import Path

import pytest

import dcgenv
from agents import make_trainer
from agents.config import Config, IQLConfig, PPOConfig
from baselines import config as bconfig
from baselines import train as btrain

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


def test_shipped_configs_load_and_default_is_mappo_commnet_ddcl_traffic_junction():
    assert len(CONFIGS) >= 4
    for path in CONFIGS:
        config = bconfig.load(path)
        assert isinstance(config, IQLConfig if path.name.startswith("iql") else PPOConfig)
    default = bconfig.load()
    assert (default.env, default.algorithm, default.comm, default.channel) == (
        "TrafficJunction-easy-v0", "mappo", "commnet", "ddcl")


def test_overrides_are_yaml_values_and_dotted_keys_fill_mappings():
    cfg = bconfig.load(None, ["lr=1e-3", "anneal_lr=false", "channel_kwargs.delta=0.1",
                              "env_kwargs.vision=1", "aggregate=gated"])
    assert cfg.lr == 1e-3 and cfg.anneal_lr is False and cfg.aggregate == "gated"
    assert cfg.channel_kwargs == {"delta": 0.1} and cfg.env_kwargs == {"vision": 1}


@pytest.mark.parametrize("overrides, names", [
    (["num_env=8"], ["'num_env'", "did you mean 'num_envs'", "hidden"]),
    (["channel=morse"], ["'channel'", "ddcl", "gumbel", "silent"]),
    (["aggregate=max"], ["'aggregate'", "mean", "gated", "attention"]),
    (["encoder=lstm"], ["'encoder'", "mlp", "gru"]),
    (["algorithm=qmix"], ["'algorithm'", "mappo", "ippo"]),
    (["num_envs=0"], ["'num_envs'", "integer in [1, inf)"]),
    (["num_envs=2.5"], ["'num_envs'", "integer in [1, inf)"]),
    (["lr=-1"], ["'lr'", "number in [0, inf)"]),
    (["gamma=1.5"], ["'gamma'", "[0, 1]"]),
    (["anneal_lr=maybe"], ["'anneal_lr'", "True or False"]),
    (["num_minibatches=3"], ["'num_minibatches'", "divide"]),
    (["env=TrafficJunction-huge-v0"], ["'env'", "TrafficJunction-easy-v0"]),
    (["env_kwargs.vison=1"], ["vison", "vision"]),
    (["channel_kwargs.detla=0.1"], ["'channel_kwargs'", "detla", "delta", "code"]),
    (["channel_kwargs.delta=-1"], ["'channel_kwargs'", "delta"]),
    (["curriculum={param: speed, start: 0.1, end: 0.3, begin: 0, finish: 1}"],
     ["'curriculum'", "speed", "add_rate"]),
    (["curriculum={param: add_rate, start: 0.1, end: 0.3, begin: 0.5, finish: 2}"],
     ["'curriculum'", "begin <= finish <= 1"]),
    (["curriculum.param=add_rate"], ["'curriculum'", "start", "finish"]),
    (["lr"], ["'lr'", "key=value"]),
    (["lr.x=1"], ["dotted keys", "env_kwargs"]),
])
def test_bad_config_raises_value_error_naming_key_and_allowed_values(overrides, names):
    with pytest.raises(ValueError) as err:
        bconfig.load(None, overrides)
    for name in names:
        assert name in str(err.value)


def test_cli_exits_with_the_message_before_compiling(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(btrain, "make_trainer", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(SystemExit) as exc:
        btrain.main(["channel=morse", "--out", str(tmp_path / "run")])
    assert exc.value.code == 2
    assert "'channel'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        btrain.main(["--config", str(tmp_path / "missing.yaml")])
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_resume_of_a_missing_run_is_a_clear_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        btrain.main(["--resume", str(tmp_path / "nowhere")])
    assert exc.value.code == 2
    assert "no checkpoint directory" in capsys.readouterr().err


def test_one_config_class_per_algorithm_takes_only_its_own_keys():
    iql = bconfig.load(next(p for p in CONFIGS if p.name.startswith("iql")), ["comm=none"])
    assert isinstance(iql, IQLConfig) and not hasattr(iql, "encoder")
    with pytest.raises(ValueError) as err:
        bconfig.load(None, ["algorithm=iql", "comm=none"])  # the default's CommNet keys
    message = str(err.value)
    assert "is not used by algorithm iql (only by ippo, mappo)" in message
    assert "iql takes: algorithm, env" in message and "target_every" in message
    with pytest.raises(ValueError, match="'target_every' is not used by algorithm mappo"):
        bconfig.load(None, ["target_every=10"])
    with pytest.raises(TypeError, match="PPOConfig or an IQLConfig"):
        Config()
    with pytest.raises(ValueError, match=r"'algorithm'.*\['mappo', 'ippo'\]"):
        PPOConfig(algorithm="iql")


def test_validation_builds_the_env_and_channel_once(monkeypatch):
    calls = []
    make = dcgenv.make
    monkeypatch.setattr(dcgenv, "make", lambda *a, **k: calls.append(a) or make(*a, **k))
    config = bconfig.load(None, ["num_envs=8"])
    trainer = make_trainer(config)
    assert len(calls) == 1 and trainer.env_params is config.environment[1]
    assert config.message_channel is config.message_channel
    assert config.message_channel == dcgenv.comms.make("ddcl", delta=0.2)
