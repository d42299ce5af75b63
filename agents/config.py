"""The learners' configuration: one frozen dataclass per algorithm, validated when it is built.

    config = Config.from_dict({"algorithm": "iql", "env": "PredatorPrey-magym-v0", ...})
    env, env_params = config.environment       # built once, while validating
    channel = config.message_channel           # dcgenv.comms.make(channel, **channel_kwargs)

:class:`Config` holds the keys every algorithm takes (environment, messages, network width,
optimiser, run size and bookkeeping). :class:`PPOConfig` (``algorithm: mappo`` or ``ippo``,
trained by :mod:`agents.mappo`) and :class:`IQLConfig` (``algorithm: iql``, :mod:`agents.iql`)
add their own. ``obs_embedding: true`` (PPO) feeds the networks the environment's sparse
observation instead of the flattened one-hot (``env_kwargs: {obs_mode: index}``: the compact
encoding all the way into the first layer); the first layers then sum the kernel rows the
one-hot's nonzero entries select, times their values, which is exactly ``Dense(one-hot)`` with
the same kernel (same parameters, same function, float summation order aside; see
:mod:`agents.networks`). Envs without ``sparse_obs`` refuse it.

``entropy_coding: true`` wraps the channel (``ddcl`` or ``fakequant``) in
``comms.EntropyCoded`` with a learned ``comms.CategoricalPrior(prior_low, prior_high)``, and
``gate: true`` wraps the result in ``comms.Gated`` (a learned send/skip flag per message); their
parameters train with the networks through ``comm_coef * cost``. Without them the channel, the
parameter trees and training are exactly those of the plain channel. ``comm_coef_warmup:
[begin, finish]`` (PPO) ramps that coefficient linearly from 0 to ``comm_coef`` between those
fractions of ``num_updates`` (``agents.mappo.comm_coef_at``); left empty, the loss is exactly
the one without the key. ``comm_coef_senders: [w_0, ..., w_{N-1}]`` (PPO, CommNet) weighs each
sender's cost in that sum (``[1, 0]``: a speaker's messages alone are priced); left empty, every
weight is 1 and the loss is exactly the one without the key. ``comm_cost_trunk: false`` (PPO,
CommNet) stops the cost's gradient at the message projection, so the price shrinks messages
without reshaping the features the action heads read.

YAML files stay flat: ``algorithm`` picks the class and every other key must be one of its
fields, so a key the chosen algorithm would ignore (``encoder`` for IQL) is a
``ValueError`` naming the keys that algorithm takes. Building a config checks every field
(types, ranges, choices: ``dcgenv.checks``), the rules across fields, the env id with its
overrides and the channel with its arguments, each error naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from typing import Any, ClassVar

import optax

import dcgenv
from agents.attention import LOG_STD_CLIP
from dcgenv import checks, comms, spaces

# integer keys that may be 0; the others are >= 1
ZERO_OK = ("seed", "hops", "num_devices", "gradient_budget_k", "learn_start", "eval_every")
SIGNED = ("prior_low", "prior_high")  # integer keys of any sign
CODED = ("ddcl", "fakequant")  # the channels entropy_coding can wrap (integer symbols)
UNIT = ("gamma", "gae_lambda", "clip_eps", "epsilon_start", "epsilon_end")  # in [0, 1]


@dataclasses.dataclass(frozen=True)
class Config:
    """The keys every algorithm takes. Build a :class:`PPOConfig` or :class:`IQLConfig` (or
    use :meth:`from_dict`, which picks one from ``algorithm``)."""

    algorithm: str = "mappo"
    # environment
    env: str = "TrafficJunction-easy-v0"
    env_kwargs: dict = dataclasses.field(default_factory=dict)  # dcgenv.make overrides
    # messages: any dcgenv.comms channel (comms.CHANNELS) with its constructor arguments
    comm: str = "none"
    channel: str = "ddcl"
    channel_kwargs: dict = dataclasses.field(default_factory=dict)
    message_dim: int = 8
    comm_coef: float = 1e-4  # lambda: weight of the channel's cost in the loss
    # learned coding of the messages (dcgenv.comms.entropy), trained by comm_coef * cost:
    # entropy_coding prices the channel's integers under a learned per-element prior over
    # prior_low..prior_high (+ an escape); gate adds a learned send/skip flag per message
    entropy_coding: bool = False  # comms.EntropyCoded around channel (ddcl or fakequant)
    prior_low: int = -15  # fakequant with both left at -15, 15: its levels 0..2^bits - 1
    prior_high: int = 15
    gate: bool = False  # comms.Gated around it all (outermost)
    # networks and optimiser
    hidden: int = 64
    agent_id: bool = True  # append a one-hot agent id to every agent's observation
    optimizer: str = "adam"  # adam (eps 1e-5) or rmsprop (decay 0.99, eps 1e-5 in the sqrt)
    lr: float = 1e-3
    max_grad_norm: float = 0.5
    gamma: float = 0.9
    # run
    num_envs: int = 256  # PPO: environments stepped in parallel; IQL: episodes per iteration
    num_updates: int = 400  # PPO updates / IQL iterations
    seed: int = 0
    num_seeds: int = 1  # seeds trained side by side (vmapped)
    num_devices: int = 1  # env batch split over this many devices (0: all; agents/sharding)
    log_every: int = 10  # progress callback every this many updates
    checkpoint_every: int = 50  # orbax checkpoint every this many updates (and at the end)
    eval_episodes: int = 1000  # greedy episodes evaluated at the end

    CHOICES: ClassVar[dict[str, tuple]] = {"optimizer": ("adam", "rmsprop"),
                                           "channel": tuple(comms.CHANNELS)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """The config of ``values["algorithm"]`` (default ``mappo``); ``ValueError`` for an
        unknown algorithm, or a key it does not take (naming the keys it takes)."""
        algorithm = values.get("algorithm", "mappo")
        checks.choice("config key 'algorithm'", "algorithm", algorithm, ALGORITHMS)
        target = ALGORITHMS[algorithm]
        if not issubclass(target, cls):
            raise ValueError(f"config key 'algorithm': {cls.__name__} does not train "
                             f"{algorithm!r}")
        taken = [f.name for f in dataclasses.fields(target)]
        for key in values:
            if key in taken:
                continue
            owners = sorted(a for a, c in ALGORITHMS.items() if key in c.__dataclass_fields__)
            close = difflib.get_close_matches(str(key), taken, n=1)
            why = (f"is not used by algorithm {algorithm} (only by {', '.join(owners)})"
                   if owners else "is unknown" + (f" (did you mean {close[0]!r}?)"
                                                   if close else ""))
            raise ValueError(f"config key {key!r} {why}; algorithm {algorithm} takes: "
                             f"{', '.join(taken)}")
        return target(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __post_init__(self):
        if type(self) is Config:
            raise TypeError("build a PPOConfig or an IQLConfig, or use Config.from_dict")
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, self._checked(f.name, f.type, getattr(self, f.name)))
        if self.num_devices > 1 and self.num_envs % self.num_devices:
            raise ValueError(f"config key 'num_devices': {self.num_devices} must divide "
                             f"num_envs = {self.num_envs}")
        talking = [c for c in self.CHOICES["comm"] if c != "none"]
        for key in ("entropy_coding", "gate"):
            if getattr(self, key) and self.comm == "none":
                raise ValueError(f"config key {key!r} codes the learned messages: needs comm "
                                 f"{' or '.join(talking)}, got 'none' (or set {key}: false)")
        self.check()
        _ = (self.environment, self.message_channel)  # build both once, which checks them

    def _checked(self, name: str, kind: str, value: Any) -> Any:
        owner = f"config key {name!r}"
        if name in self.CHOICES:
            return checks.choice(owner, name, value, self.CHOICES[name])
        if kind == "bool":
            return checks.flag(owner, name, value)
        if kind == "bool | None":  # None: resolved in check()
            if value is None or isinstance(value, bool):
                return value
            raise ValueError(f"{owner}: got {value!r}; allowed: true, false or null (the "
                             "environment's own default)")
        if kind == "int":
            low = None if name in SIGNED else 0 if name in ZERO_OK else 1
            return checks.integer(owner, name, value, low=low)
        if kind == "float":
            return checks.real(owner, name, _yaml_float(value), 0, 1 if name in UNIT else None)
        if name == "comm_coef_warmup":
            return _checked_warmup(value)
        if name == "comm_coef_senders":
            return _checked_weights(value)
        if name == "env":  # a registered id, or jaxmarl:<id> (built when validated)
            if isinstance(value, str) and value.startswith(dcgenv.registry.JAXMARL):
                return value
            return checks.choice(owner, name, value, dcgenv.registered())
        if not isinstance(value, dict):  # the *_kwargs mappings and the curriculum
            raise ValueError(f"{owner}: got {value!r}; allowed: a mapping (e.g. {{delta: 0.2}})")
        return value

    def check(self) -> None:
        """The algorithm's rules across keys (after every key passed its own check)."""

    @functools.cached_property
    def environment(self) -> tuple[Any, Any]:
        """``(env, env_params)`` = ``dcgenv.make(env, **env_kwargs)``, built once."""
        try:
            return dcgenv.make(self.env, **self.env_kwargs)
        except ValueError as err:
            raise ValueError(f"config key 'env_kwargs': {err}") from None

    @functools.cached_property
    def message_channel(self) -> comms.Channel:
        """``dcgenv.comms.make(channel, **channel_kwargs)``, built once; ``entropy_coding``
        wraps it in ``comms.EntropyCoded`` with ``comms.CategoricalPrior(prior_low,
        prior_high)``, then ``gate`` in ``comms.Gated``. Learnable channels (``has_params``)
        keep their parameters with the networks' (:mod:`agents.networks`, :mod:`agents.iql`)."""
        try:
            channel = comms.make(self.channel, **self.channel_kwargs)
        except ValueError as err:
            raise ValueError(f"config key 'channel_kwargs': {err}") from None
        if self.entropy_coding:
            if self.channel not in CODED:
                raise ValueError(f"config key 'entropy_coding' needs channel "
                                 f"{' or '.join(CODED)}, got {self.channel!r}")
            low, high = self.prior_low, self.prior_high
            if self.channel == "fakequant" and (low, high) == (-15, 15):  # left at the default
                low, high = 0, 2**channel.bits - 1  # FakeQuant sends the levels 0..2^bits - 1
            try:
                prior = comms.CategoricalPrior(low, high)
            except ValueError as err:
                raise ValueError(f"config keys 'prior_low', 'prior_high': {err}") from None
            channel = comms.EntropyCoded(channel, prior)
        return comms.Gated(channel) if self.gate else channel

    @property
    def channel_name(self) -> str:
        """``channel`` with its learned coding, e.g. ``gated entropy-coded ddcl``."""
        return " ".join((["gated"] if self.gate else [])
                        + (["entropy-coded"] if self.entropy_coding else []) + [self.channel])


@dataclasses.dataclass(frozen=True)
class PPOConfig(Config):
    """MAPPO (centralised critic on all observations) or IPPO (local critic), with CommNet
    hops inside the actor (``comm: commnet``) or no communication: :mod:`agents.mappo`."""

    algorithm: str = "mappo"
    comm: str = "commnet"
    hops: int = 1  # CommNet communication hops per step
    aggregate: str = "attention"  # mean (CommNet), gated (IC3Net gate), attention (TarMAC),
    # gradient_aware (TarMAC scores + gradient_tau * log(eps + g_j / mean g), g_j the running
    # mean of ||dL/dm_j|| kept in the training state; agents/attention.py)
    gradient_tau: float = 1.0
    # gradient budget: each receiver passes gradients to its k senders with the largest g_j
    # only (the others through stop_gradient); 0: off
    gradient_budget_k: int = 0
    # information bottleneck on the CommNet messages: none, or variational (mean/log-std heads,
    # reparameterised sample, KL to N(0, I) in nats priced in the loss); the price is fixed
    # (bottleneck_price) when bottleneck_budget is 0, else a Lagrange multiplier starting at
    # bottleneck_price and moved toward KL per message <= bottleneck_budget (nats)
    bottleneck: str = "none"
    bottleneck_price: float = 1e-3
    bottleneck_budget: float = 0.0
    # the bottleneck's noise std at initialisation (the log-std head's bias starts at its log;
    # allowed [exp(-10), exp(2)], the head's clip). 1.0: noise at the prior's scale; Alemi et
    # al.'s demo (alexalemi/vib_demo, MNISTVIB.ipynb: scale softplus(rho - 5)) starts near
    # 0.0067 (docs/attention.md: what each start did in the ablation)
    bottleneck_init_std: float = 1.0
    encoder: str = "mlp"  # mlp or gru (recurrent actor, truncated BPTT over a rollout)
    # first layers embed the env's sparse observation (env.sparse_obs: index entries and
    # counts), exactly Dense(one-hot) with the same kernel; for env_kwargs {obs_mode: index}
    obs_embedding: bool = False
    team_reward: bool = False  # replace each agent's reward by the team mean
    # turn-taking games (Negotiation, Referential): an agent whose obs "active" is false waits
    # for its turn, it has not left: its return runs on through the steps it waits (no cut
    # there, rewards it receives while waiting count) and the critic trains on every
    # agent-step; the policy still trains on active steps only. false: not active = gone.
    # null (the default): the env's turn_based (true for Negotiation, Rubinstein,
    # Referential, Kyle); the checked config holds the resolved bool
    turn_taking: bool | None = None
    # linear schedule of one float env param over training, e.g. IC3Net's add_rate curriculum:
    # {param: add_rate, start: 0.1, end: 0.3, begin: 0.1, finish: 0.5} (begin/finish: fractions
    # of num_updates); evaluation uses the environment's own value
    curriculum: dict = dataclasses.field(default_factory=dict)
    # warm-up of comm_coef (lambda): [begin, finish] fractions of num_updates; lambda is
    # multiplied by a linear ramp, 0 before begin, 1 after finish (begin == finish: a step);
    # empty (the default): lambda from the first update, exactly as without the key
    comm_coef_warmup: tuple = ()
    # per-sender weights of the channel cost, one float >= 0 per agent (e.g. [1, 0]: only the
    # first agent's messages are priced); empty (the default): every sender weighs 1
    comm_coef_senders: tuple = ()
    # false: the channel cost's gradient stops at the message projection (the price trains
    # that layer and the channel's own parameters, never the encoder the actions also read);
    # true (the default): it flows on into the encoder, exactly as without the key
    comm_cost_trunk: bool = True
    num_steps: int = 20  # rollout length per update
    update_epochs: int = 4
    num_minibatches: int = 4  # minibatches of environments
    anneal_lr: bool = True
    gae_lambda: float = 0.8
    clip_eps: float = 0.2
    ent_coef: float = 0.1
    # per-head entropy weights, {head: weight >= 0} over the action space's Dict keys (e.g.
    # Negotiation's {accept: 0.05, proposal: 0.05, utterance: 0.001}); heads not named use
    # ent_coef; empty (the default): ent_coef on the summed entropy, exactly as without the key
    ent_coef_heads: dict = dataclasses.field(default_factory=dict)
    vf_coef: float = 0.5

    CHOICES: ClassVar[dict[str, tuple]] = {
        **Config.CHOICES, "algorithm": ("mappo", "ippo"), "comm": ("commnet", "none"),
        "aggregate": ("mean", "gated", "attention", "gradient_aware"),
        "encoder": ("mlp", "gru"), "bottleneck": ("none", "variational")}

    @property
    def steps_per_update(self) -> int:
        """Env steps one update plays, all seeds together."""
        return self.num_envs * self.num_steps * self.num_seeds

    def describe(self) -> str:
        comm = (f"CommNet/{self.aggregate} x{self.hops} through {self.channel_name}"
                if self.comm == "commnet" else "no comm")
        return f"{self.algorithm}, {comm}, on {self.env}"

    def check(self) -> None:
        if self.num_envs % self.num_minibatches:
            raise ValueError(f"config key 'num_minibatches': {self.num_minibatches} must divide "
                             f"num_envs = {self.num_envs}")
        if self.comm == "commnet" and self.hops == 0:
            raise ValueError("config key 'hops': comm: commnet needs hops >= 1 "
                             "(or set comm: none)")
        if self.comm == "none":
            for key, off in (("gradient_budget_k", 0), ("bottleneck", "none")):
                if getattr(self, key) != off:
                    raise ValueError(f"config key {key!r}: {getattr(self, key)!r} acts on "
                                     f"CommNet messages; allowed with comm: none: {off!r} "
                                     "(or set comm: commnet)")
        if self.curriculum:
            _check_curriculum(self.curriculum, self.environment[1])
        if self.comm_coef_senders:
            n = self.environment[0].num_agents
            if len(self.comm_coef_senders) != n or self.comm != "commnet":
                raise ValueError(f"config key 'comm_coef_senders': got "
                                 f"{list(self.comm_coef_senders)!r}; allowed with comm: "
                                 f"commnet only, one weight per agent ({n} for {self.env}), "
                                 "or [] for all 1")
        if not self.comm_cost_trunk and self.comm != "commnet":
            raise ValueError("config key 'comm_cost_trunk': false acts on CommNet messages; "
                             "allowed with comm: none: true (or set comm: commnet)")
        lo, hi = math.exp(LOG_STD_CLIP[0]), math.exp(LOG_STD_CLIP[1])
        if not lo <= self.bottleneck_init_std <= hi:
            raise ValueError(f"config key 'bottleneck_init_std': {self.bottleneck_init_std!r}; "
                             f"allowed: [{lo:.3g}, {hi:.3g}] (exp of the log-std head's clip "
                             f"{list(LOG_STD_CLIP)})")
        if not self.comm_cost_trunk and self.bottleneck != "none":
            raise ValueError("config key 'comm_cost_trunk': false prices the channel alone; "
                             "allowed with bottleneck: variational: true (or set bottleneck: "
                             "none)")
        if self.turn_taking is None:
            object.__setattr__(self, "turn_taking",
                               bool(getattr(self.environment[0], "turn_based", False)))
        if self.ent_coef_heads:  # a checked copy, weights as floats
            object.__setattr__(self, "ent_coef_heads", _checked_head_weights(
                self.ent_coef_heads, self.environment, self.env))
        if self.obs_embedding and not hasattr(self.environment[0], "sparse_obs"):
            raise ValueError(f"config key 'obs_embedding': {self.env} has no sparse "
                             "observation (env.sparse_obs); allowed: true only for "
                             "TrafficJunction-* and PredatorPrey-easy/medium/hard (best with "
                             "env_kwargs {obs_mode: index}), else false")


@dataclasses.dataclass(frozen=True)
class IQLConfig(Config):
    """Independent Q-learning with recurrent Q-networks, PS or NPS, with learned messages
    (``comm: message``) or none: :mod:`agents.iql`. ``num_envs`` episodes per iteration (of
    the env's ``max_steps_in_episode`` steps), ``num_updates`` iterations."""

    algorithm: str = "iql"
    parameter_sharing: bool = True  # false: one parameter set per agent (NPS)
    gradient_steps: int = 1  # gradient steps per iteration, on batch_episodes episodes each
    batch_episodes: int = 32
    buffer_episodes: int = 5000  # replay buffer capacity in episodes (oldest overwritten)
    double_q: bool = True
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_steps: int = 50000  # env steps of linear epsilon decay (per seed)
    target_every: int = 200  # episodes between copies of the online to the target network
    # PyMARL-style input: each agent's previous action, one-hot (zeros at an episode's start),
    # after its observation (arXiv 2401.15059's code: marl-indep-comm, arguments.py)
    last_action: bool = False
    team_reward: bool = False  # every agent learns from the sum of all agents' rewards
    # keys matching the authors' code (marl-indep-comm); their defaults keep the behaviour
    # from before the keys existed, bit for bit (docs/iql.md, "Against the authors' code")
    time_limit_terminal: bool = False  # store a time-limit cut as terminated: no bootstrap
    per_agent_clip: bool = False  # NPS: each agent's own loss (not /N), clipped by its own norm
    own_message: bool = True  # false (PS, comm: message): the Q input has the others' only
    opt_eps: float = 1e-5  # the optimiser's epsilon (RMSprop or Adam; torch's default: 1e-8)
    rmsprop_eps_in_sqrt: bool = True  # optax's 1/sqrt(v + eps); false: torch's 1/(sqrt(v) + eps)
    learn_start: int = 0  # episodes stored before learning starts; 0: batch_episodes
    eval_every: int = 0  # greedy evaluation every this many iterations during training; 0: off
    eval_episodes_during: int = 20  # greedy episodes of each such evaluation

    CHOICES: ClassVar[dict[str, tuple]] = {
        **Config.CHOICES, "algorithm": ("iql",), "comm": ("message", "none")}

    @property
    def steps_per_update(self) -> int:
        """0: IQL counts the env steps it plays itself (its ``env_steps`` metric), as its
        episodes end at different times."""
        return 0

    def describe(self) -> str:
        comm = (f"messages through {self.channel_name}" if self.comm == "message"
                else "no comm")
        return f"iql, {comm}, {'PS' if self.parameter_sharing else 'NPS'}, on {self.env}"

    def check(self) -> None:
        if self.batch_episodes > self.buffer_episodes:
            raise ValueError(f"config key 'batch_episodes': {self.batch_episodes} exceeds "
                             f"buffer_episodes = {self.buffer_episodes}")
        if self.learn_start > self.buffer_episodes:
            raise ValueError(f"config key 'learn_start': {self.learn_start} exceeds "
                             f"buffer_episodes = {self.buffer_episodes}; allowed: 0 "
                             f"(batch_episodes) to {self.buffer_episodes}")
        if self.per_agent_clip and self.parameter_sharing:
            raise ValueError("config key 'per_agent_clip': one parameter set under "
                             "parameter_sharing true has one loss and one norm; allowed with "
                             "parameter_sharing true: false")
        if not self.own_message and (not self.parameter_sharing or self.comm != "message"):
            raise ValueError("config key 'own_message': false drops one's own message under "
                             "parameter_sharing true and comm: message only; allowed here: true")
        if self.opt_eps <= 0:
            raise ValueError(f"config key 'opt_eps': got {self.opt_eps}; allowed: a number > 0")
        if not self.rmsprop_eps_in_sqrt and self.optimizer != "rmsprop":
            raise ValueError("config key 'rmsprop_eps_in_sqrt': places RMSprop's epsilon; "
                             f"allowed with optimizer {self.optimizer}: true")
        if self.num_devices != 1:
            raise ValueError("config key 'num_devices': IQL trains on one device (its envs "
                             "live inside each iteration, nothing to split); allowed: 1 — "
                             "train seeds side by side with num_seeds instead")
        if self.epsilon_end > self.epsilon_start:
            raise ValueError("config keys 'epsilon_start', 'epsilon_end': need "
                             f"0 <= epsilon_end <= epsilon_start <= 1, got "
                             f"{self.epsilon_start}, {self.epsilon_end}")
        env, params = self.environment
        if not isinstance(env.action_space(params), spaces.Discrete):
            raise ValueError(f"config key 'env': IQL needs a Discrete action space; {self.env} "
                             f"has {env.action_space(params)!r}")


ALGORITHMS: dict[str, type[Config]] = {"mappo": PPOConfig, "ippo": PPOConfig,
                                       "iql": IQLConfig}


def _check_curriculum(c: dict, params) -> None:
    keys = ("param", "start", "end", "begin", "finish")
    fields = sorted(f.name for f in dataclasses.fields(params)
                    if isinstance(getattr(params, f.name), float))
    if sorted(c) != sorted(keys):
        raise ValueError(f"config key 'curriculum': got keys {sorted(c)}; allowed: exactly "
                         f"{', '.join(keys)} (or an empty mapping)")
    checks.choice("config key 'curriculum'", "param", c["param"], fields)
    for k in keys[1:]:
        checks.real("config key 'curriculum'", k, c[k])
    if not 0 <= c["begin"] <= c["finish"] <= 1:
        raise ValueError("config key 'curriculum': need 0 <= begin <= finish <= 1 (fractions of "
                         f"num_updates), got begin={c['begin']}, finish={c['finish']}")


def _checked_head_weights(weights: dict, environment, env_id: str) -> dict:
    """``ent_coef_heads`` as a new dict of floats: its keys must be the env's action ``Dict``
    keys and its weights finite floats >= 0 (YAML's ``1e-3`` strings read as numbers);
    ``ValueError`` naming the key, the entry and the env's heads."""
    env, params = environment
    space = env.action_space(params)
    heads = list(space.spaces) if isinstance(space, spaces.Dict) else []
    allowed = (f"allowed: a mapping of {env_id}'s action heads ({', '.join(heads)}) to floats "
               ">= 0" if heads else f"allowed: {{}} ({env_id}'s action space is one head: use "
               "ent_coef)")
    out = {}
    for name, value in weights.items():
        w = _yaml_float(value)
        if name not in heads or isinstance(w, bool) or not isinstance(w, (int, float)) \
                or not 0 <= w < float("inf"):
            raise ValueError(f"config key 'ent_coef_heads': got {name!r}: {value!r}; {allowed}")
        out[name] = float(w)
    return out


def _checked_warmup(value) -> tuple:
    """``comm_coef_warmup`` as a tuple ``(begin, finish)`` of floats, or ``()`` for none (also
    from ``None`` or an empty list); ``ValueError`` naming the key, the value and what is
    allowed."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return ()
    allowed = ("allowed: [begin, finish] with 0 <= begin <= finish <= 1 (fractions of "
               "num_updates), or [] for no warm-up")
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"config key 'comm_coef_warmup': got {value!r}; {allowed}")
    begin, finish = (_yaml_float(v) for v in value)
    for v in (begin, finish):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise ValueError(f"config key 'comm_coef_warmup': got {value!r}; {allowed}")
    if not 0 <= begin <= finish <= 1:
        raise ValueError(f"config key 'comm_coef_warmup': got {list(value)!r}; {allowed}")
    return (float(begin), float(finish))


def _checked_weights(value) -> tuple:
    """``comm_coef_senders`` as a tuple of floats >= 0, or ``()`` (also from ``None`` or an
    empty list); ``ValueError`` naming the key, the value and what is allowed."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return ()
    allowed = "allowed: a list of finite floats >= 0, one per agent, or [] for all 1"
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"config key 'comm_coef_senders': got {value!r}; {allowed}")
    weights = tuple(_yaml_float(v) for v in value)
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and 0 <= w < float("inf")
               for w in weights):
        raise ValueError(f"config key 'comm_coef_senders': got {list(value)!r}; {allowed}")
    return tuple(float(w) for w in weights)


def _yaml_float(value):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; accept it as the number it means."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def make_optimizer(config: Config, lr, eps: float = 1e-5, eps_in_sqrt: bool = True,
                   clip: optax.GradientTransformation | None = None
                   ) -> optax.GradientTransformation:
    """Clipping (``clip``; default: global-norm clipping at ``max_grad_norm``) then
    ``config.optimizer`` at learning rate ``lr`` (a float or an optax schedule) with epsilon
    ``eps``; RMSprop divides by ``sqrt(v + eps)`` (optax's default) or, ``eps_in_sqrt``
    false, by ``sqrt(v) + eps`` (torch's ``RMSprop``). MAPPO takes the defaults."""
    if config.optimizer == "rmsprop":
        opt = optax.rmsprop(lr, decay=0.99, eps=eps, eps_in_sqrt=eps_in_sqrt)
    else:
        opt = optax.adam(lr, eps=eps)
    clip = optax.clip_by_global_norm(config.max_grad_norm) if clip is None else clip
    return optax.chain(clip, opt)
