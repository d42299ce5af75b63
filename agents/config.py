"""The learners' configuration: one flat, frozen dataclass, validated before anything compiles.

Every field has a default (the default baseline: MAPPO + CommNet + DDCL on
``TrafficJunction-easy-v0``). :meth:`Config.validate` raises ``ValueError`` naming the field
and its allowed values; :meth:`Config.from_dict` also rejects unknown keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from typing import Any

import optax

import dcgenv
from dcgenv import comms

CHANNELS = {"ddcl": comms.DDCL, "continuous": comms.Continuous, "fakequant": comms.FakeQuant,
            "dru": comms.DRU, "gaussian": comms.GaussianNoise, "gumbel": comms.GumbelSoftmax,
            "silent": comms.Silent}
CHOICES = {"algorithm": ("mappo", "ippo", "iql"), "comm": ("commnet", "message", "none"),
           "aggregate": ("mean", "gated", "attention"), "encoder": ("mlp", "gru"),
           "channel": tuple(CHANNELS), "optimizer": ("adam", "rmsprop")}


@dataclasses.dataclass(frozen=True)
class Config:
    # environment
    env: str = "TrafficJunction-easy-v0"
    env_kwargs: dict = dataclasses.field(default_factory=dict)  # dcgenv.make overrides
    # learner and networks
    algorithm: str = "mappo"  # mappo: centralised critic on all observations; ippo: local;
    # iql: independent recurrent Q-learning (agents.iql)
    comm: str = "commnet"  # commnet: hops inside the PPO actor; message: IQL's message network
    # (obs -> 64 -> 64 -> message_dim per agent, every agent's Q-network sees all messages);
    # none
    parameter_sharing: bool = True  # false (IQL only): one parameter set per agent (NPS)
    hops: int = 1  # CommNet communication hops per step
    aggregate: str = "attention"  # mean (CommNet), gated (IC3Net gate), attention (TarMAC)
    channel: str = "ddcl"
    channel_kwargs: dict = dataclasses.field(default_factory=dict)  # channel constructor
    message_dim: int = 8
    comm_coef: float = 1e-4  # lambda: weight of the channel's cost in the loss
    encoder: str = "mlp"
    hidden: int = 64
    agent_id: bool = True  # append a one-hot agent id to every agent's observation
    team_reward: bool = False  # replace each agent's reward by the team mean
    # linear schedule of one float env param over training, e.g. IC3Net's add_rate curriculum:
    # {param: add_rate, start: 0.1, end: 0.3, begin: 0.1, finish: 0.5} (begin/finish: fractions
    # of num_updates); evaluation uses the environment's own value
    curriculum: dict = dataclasses.field(default_factory=dict)
    # PPO
    num_envs: int = 256
    num_steps: int = 20
    num_updates: int = 400
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 1e-3
    anneal_lr: bool = True
    max_grad_norm: float = 0.5
    gamma: float = 0.9
    gae_lambda: float = 0.8
    clip_eps: float = 0.2
    ent_coef: float = 0.1
    vf_coef: float = 0.5
    optimizer: str = "adam"  # adam (eps 1e-5) or rmsprop (decay 0.99, eps 1e-5: PyMARL's)
    # IQL (num_envs episodes per iteration, num_updates iterations; num_steps is not used:
    # an iteration collects whole episodes of the env's max_steps_in_episode)
    gradient_steps: int = 1  # gradient steps per iteration, on batch_episodes episodes each
    batch_episodes: int = 32
    buffer_episodes: int = 5000  # replay buffer capacity in episodes (oldest overwritten)
    double_q: bool = True
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_steps: int = 50000  # env steps of linear epsilon decay (per seed)
    target_every: int = 200  # episodes between copies of the online to the target network
    # run
    seed: int = 0
    num_seeds: int = 1  # seeds trained side by side (vmapped)
    num_devices: int = 1  # env batch split over this many devices (0: all; agents/sharding)
    log_every: int = 10  # progress callback every this many updates
    checkpoint_every: int = 50  # orbax checkpoint every this many updates (and at the end)
    eval_episodes: int = 1000  # greedy episodes evaluated at the end

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        fields = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in fields:
                close = difflib.get_close_matches(str(key), fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown config key {key!r}{hint}; allowed keys: "
                                 f"{', '.join(sorted(fields))}")
        floats = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, float)}
        values = {k: _yaml_float(v) if k in floats else v for k, v in values.items()}
        return cls(**values).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> Config:
        """Check every field (types, ranges, choices, env id and overrides, channel); return
        ``self``. Builds the environment and the channel once, on the host, to check them."""
        for f in dataclasses.fields(self):
            value, default = getattr(self, f.name), f.default
            if isinstance(default, bool):
                ok, want = isinstance(value, bool), "true or false"
            elif isinstance(default, int):
                ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
                zero_ok = f.name in ("seed", "hops", "num_devices")
                ok, want = ok and (value >= 0 if zero_ok else value >= 1), (
                    "an integer >= 0" if zero_ok else "an integer >= 1")
            elif isinstance(default, float):
                ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
                ok, want = ok and value >= 0, "a number >= 0"
            elif f.name in CHOICES:
                ok, want = value in CHOICES[f.name], f"one of {', '.join(CHOICES[f.name])}"
            elif f.name == "env":
                ok, want = value in dcgenv.registered(), (
                    f"a registered id: {', '.join(dcgenv.registered())}")
            else:  # the *_kwargs mappings and the curriculum
                ok, want = isinstance(value, dict), "a mapping (e.g. {delta: 0.2})"
            if not ok:
                raise ValueError(f"config key {f.name!r}: got {value!r}; allowed: {want}")
        for name, high in (("gamma", 1.0), ("gae_lambda", 1.0), ("clip_eps", 1.0)):
            if getattr(self, name) > high:
                raise ValueError(f"config key {name!r}: got {getattr(self, name)!r}; "
                                 f"allowed: a number in [0, {high}]")
        if self.algorithm != "iql" and self.num_envs % self.num_minibatches:
            raise ValueError(f"config key 'num_minibatches': {self.num_minibatches} must divide "
                             f"num_envs = {self.num_envs}")
        if self.num_devices > 1 and self.num_envs % self.num_devices:
            raise ValueError(f"config key 'num_devices': {self.num_devices} must divide "
                             f"num_envs = {self.num_envs}")
        if self.algorithm == "iql":
            if self.comm == "commnet":
                raise ValueError("config key 'comm': algorithm iql takes comm: message or none")
            if self.batch_episodes > self.buffer_episodes:
                raise ValueError(f"config key 'batch_episodes': {self.batch_episodes} exceeds "
                                 f"buffer_episodes = {self.buffer_episodes}")
            if self.num_devices != 1:
                raise ValueError("config key 'num_devices': IQL trains on one device (its "
                                 "envs live inside each iteration, nothing to split); allowed: "
                                 "1 — train seeds side by side with num_seeds instead")
            if not self.epsilon_end <= self.epsilon_start <= 1:
                raise ValueError("config keys 'epsilon_start', 'epsilon_end': need "
                                 f"0 <= epsilon_end <= epsilon_start <= 1, got "
                                 f"{self.epsilon_start}, {self.epsilon_end}")
        else:
            if self.comm == "message":
                raise ValueError(f"config key 'comm': comm: message is IQL's; algorithm "
                                 f"{self.algorithm} takes commnet or none")
            if not self.parameter_sharing:
                raise ValueError(f"config key 'parameter_sharing': algorithm {self.algorithm} "
                                 "shares parameters across agents; false needs algorithm: iql")
        if self.comm == "commnet" and self.hops == 0:
            raise ValueError("config key 'hops': comm: commnet needs hops >= 1 "
                             "(or set comm: none)")
        _, params = dcgenv.make(self.env, **self.env_kwargs)  # ValueError naming bad overrides
        make_channel(self)
        if self.curriculum:
            _check_curriculum(self.curriculum, params)
        return self


def _check_curriculum(c: dict, params) -> None:
    keys = ("param", "start", "end", "begin", "finish")
    fields = sorted(f.name for f in dataclasses.fields(params)
                    if isinstance(getattr(params, f.name), float))
    if sorted(c) != sorted(keys):
        raise ValueError(f"config key 'curriculum': got keys {sorted(c)}; allowed: exactly "
                         f"{', '.join(keys)} (or an empty mapping)")
    if c["param"] not in fields:
        raise ValueError(f"config key 'curriculum': param {c['param']!r} is not a float field "
                         f"of the env params; allowed: {', '.join(fields)}")
    for k in keys[1:]:
        if not isinstance(c[k], numbers.Real) or isinstance(c[k], bool):
            raise ValueError(f"config key 'curriculum': {k} must be a number, got {c[k]!r}")
    if not 0 <= c["begin"] <= c["finish"] <= 1:
        raise ValueError("config key 'curriculum': need 0 <= begin <= finish <= 1 (fractions of "
                         f"num_updates), got begin={c['begin']}, finish={c['finish']}")


def _yaml_float(value):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; accept it as the number it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def make_channel(config: Config) -> comms.Channel:
    """The ``dcgenv.comms`` channel named by ``config.channel`` with ``channel_kwargs``."""
    cls = CHANNELS[config.channel]
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(config.channel_kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"config key 'channel_kwargs': unknown {unknown} for channel "
                         f"{config.channel!r}; allowed: {allowed or 'none'}")
    try:
        return cls(**config.channel_kwargs)
    except ValueError as err:
        raise ValueError(f"config key 'channel_kwargs': {err}") from None


def make_optimizer(config: Config, lr) -> optax.GradientTransformation:
    """Global-norm clipping (``max_grad_norm``) then ``config.optimizer`` at learning rate
    ``lr`` (a float or an optax schedule)."""
    if config.optimizer == "rmsprop":
        opt = optax.rmsprop(lr, decay=0.99, eps=1e-5)
    else:
        opt = optax.adam(lr, eps=1e-5)
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), opt)
