"""Speaker and listener trained end to end with pathwise gradients through ``Referential-v0``.

    python -m baselines.referential [--channel gumbel|continuous|ddcl|silent|...] [--iters 3000]
                                    [--cost-weight 0] [--out baselines/results]

The environment runs in its differentiable option (``differentiable=True``: the listener submits
logits and the reward is the probability of the target), with the channel in training mode
(straight-through Gumbel samples, Havrylov & Titov 2017; DDCL's ``z + eps``). Loss per episode:
``-log(reward) + cost_weight * message_cost``, its gradient flowing listener -> channel ->
speaker through ``env.step`` (vmapped over a batch of episodes). Every ``eval_every`` updates,
a fresh batch is played with the channel in evaluation mode (greedy symbols, DDCL's real
integers) and the listener's argmax pick; the script prints the accuracy (``info["success"]``)
and the bits per message (``info["bits"]``) and writes ``referential_<channel>.json`` under
``--out``.

Networks (EGG's discrimination architecture, as flax MLPs): the speaker maps the target's
features to the message; the listener embeds the received message and each candidate and
scores candidates by dot product.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import dcgenv
from dcgenv import checks, comms


@dataclasses.dataclass(frozen=True)
class Config:
    env_id: str = "Referential-v0"
    n_attributes: int = 5
    n_values: int = 10
    n_candidates: int = 2
    message_length: int = 4
    message_dim: int = 8  # per token, for continuous / ddcl (Gumbel tokens are vocab wide)
    channel: str = "gumbel"  # a dcgenv.comms.CHANNELS name: gumbel, continuous, ddcl, silent...
    vocab_size: int = 100
    delta: float = 0.2  # DDCL step size
    cost_weight: float = 0.0  # lambda on info["message_cost"]
    hidden: int = 64
    batch: int = 256  # episodes per gradient step
    eval_batch: int = 1024  # episodes per evaluation
    iters: int = 3000
    lr: float = 1e-3
    eval_every: int = 250
    seed: int = 0


def make_channel(cfg: Config) -> comms.Channel:
    """``cfg.channel`` from the ``dcgenv.comms`` table, with ``vocab_size`` (gumbel) or
    ``delta`` (ddcl) from ``cfg``."""
    checks.choice("baselines.referential", "channel", cfg.channel, comms.CHANNELS)
    kwargs = {"gumbel": {"vocab_size": cfg.vocab_size}, "ddcl": {"delta": cfg.delta}}
    return comms.make(cfg.channel, **kwargs.get(cfg.channel, {}))


def make_envs(cfg: Config):
    """The training env (channel in training mode) and the evaluation env, both differentiable."""
    kwargs = dict(n_attributes=cfg.n_attributes, n_candidates=cfg.n_candidates,
                  message_length=cfg.message_length, message_dim=cfg.message_dim,
                  channel=make_channel(cfg), differentiable=True)
    if cfg.env_id == "Referential-v0":
        kwargs["n_values"] = cfg.n_values
    train_env, params = dcgenv.make(cfg.env_id, channel_train=True, **kwargs)
    eval_env, _ = dcgenv.make(cfg.env_id, channel_train=False, **kwargs)
    return train_env, eval_env, params


class Speaker(nn.Module):
    hidden: int
    shape: tuple[int, ...]

    @nn.compact
    def __call__(self, target):
        h = nn.relu(nn.Dense(self.hidden)(target))
        return nn.Dense(int(np.prod(self.shape)))(h).reshape(self.shape)


class Listener(nn.Module):
    hidden: int

    @nn.compact
    def __call__(self, message, candidates):
        m = nn.Dense(self.hidden)(nn.relu(nn.Dense(self.hidden)(message.reshape(-1))))
        c = nn.Dense(self.hidden)(nn.relu(nn.Dense(self.hidden)(candidates)))
        return c @ m  # one logit per candidate


def play(nets, key, env, params, speaker: Speaker, listener: Listener, batch: int):
    """A batch of episodes: the speaker speaks at step 0, the listener chooses at step 1.

    Returns the listener's reward ``[batch]`` and the env's ``info`` of steps 0 and 1.
    """
    key_reset, key_0, key_1 = jax.random.split(key, 3)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key_reset, batch),
                                                         params)
    message = jax.vmap(speaker.apply, in_axes=(None, 0))(nets["speaker"], obs["target"][:, 0])
    no_choice = jnp.zeros((batch, 2, env.n_candidates))
    actions = {"message": jnp.stack([message, jnp.zeros_like(message)], 1), "choice": no_choice}
    obs, state, _, _, _, info_0 = step(jax.random.split(key_0, batch), state, actions, params)

    logits = jax.vmap(listener.apply, in_axes=(None, 0, 0))(
        nets["listener"], obs["message"][:, 1], obs["candidates"][:, 1])
    actions = {"message": jnp.zeros_like(actions["message"]),
               "choice": jnp.stack([jnp.zeros_like(logits), logits], 1)}
    _, _, reward, _, _, info_1 = step(jax.random.split(key_1, batch), state, actions, params)
    return reward[:, 1], info_0, info_1


def make_train(cfg: Config):
    """``init(key) -> (nets, opt_state)``, ``chunk(nets, opt_state, key)`` (``eval_every``
    updates; returns the new pair and the mean training loss) and ``evaluate(nets, key)`` (
    accuracy and mean bits per message on ``eval_batch`` fresh episodes, channel in evaluation
    mode)."""
    train_env, eval_env, params = make_envs(cfg)
    speaker = Speaker(cfg.hidden, train_env.sent_shape)
    listener = Listener(cfg.hidden)
    opt = optax.adam(cfg.lr)

    def init(key):
        key_s, key_l = jax.random.split(key)
        obs, _ = train_env.reset(key, params)
        nets = {"speaker": speaker.init(key_s, obs["target"][0]),
                "listener": listener.init(key_l, obs["message"][1], obs["candidates"][1])}
        return nets, opt.init(nets)

    def loss(nets, key):
        reward, info_0, _ = play(nets, key, train_env, params, speaker, listener, cfg.batch)
        nll = -jnp.mean(jnp.log(jnp.maximum(reward, 1e-12)))
        return nll + cfg.cost_weight * jnp.mean(info_0["message_cost"])

    def update(carry, key):
        nets, opt_state = carry
        value, grads = jax.value_and_grad(loss)(nets, key)
        updates, opt_state = opt.update(grads, opt_state, nets)
        return (optax.apply_updates(nets, updates), opt_state), value

    @jax.jit
    def chunk(nets, opt_state, key):
        (nets, opt_state), losses = jax.lax.scan(
            update, (nets, opt_state), jax.random.split(key, cfg.eval_every))
        return nets, opt_state, jnp.mean(losses)

    @jax.jit
    def evaluate(nets, key):
        _, info_0, info_1 = play(nets, key, eval_env, params, speaker, listener, cfg.eval_batch)
        return jnp.mean(info_1["success"]), jnp.mean(info_0["bits"])

    return init, chunk, evaluate


def train(cfg: Config, log=print) -> dict:
    """Train; return the history of evaluations (``log`` gets one line per evaluation)."""
    init, chunk, evaluate = make_train(cfg)
    key_init, key_train, key_eval = jax.random.split(jax.random.key(cfg.seed), 3)
    nets, opt_state = init(key_init)
    history = {"iteration": [], "loss": [], "accuracy": [], "bits_per_message": []}
    for i, (key_c, key_e) in enumerate(zip(
            jax.random.split(key_train, cfg.iters // cfg.eval_every),
            jax.random.split(key_eval, cfg.iters // cfg.eval_every), strict=True)):
        nets, opt_state, loss = chunk(nets, opt_state, key_c)
        accuracy, bits = evaluate(nets, key_e)
        row = ((i + 1) * cfg.eval_every, float(loss), float(accuracy), float(bits))
        for name, value in zip(history, row, strict=True):
            history[name].append(value)
        log(f"iter {row[0]:6d}  loss {row[1]:8.4f}  accuracy {row[2]:.3f}  bits/message "
            f"{row[3]:8.2f}")
    return history


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for field in dataclasses.fields(Config):
        choices = list(comms.CHANNELS) if field.name == "channel" else None
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default),
                            default=field.default, choices=choices)
    parser.add_argument("--out", default="baselines/results")
    args = vars(parser.parse_args(argv))
    out = Path(args.pop("out"))
    cfg = Config(**args)
    print(f"{cfg.env_id}: {cfg.n_attributes} x {cfg.n_values} objects, K = {cfg.n_candidates}, "
          f"channel {make_channel(cfg)!r}, L = {cfg.message_length}")
    start = time.perf_counter()
    history = train(cfg)
    result = {"config": dataclasses.asdict(cfg), "history": history,
              "final_accuracy": history["accuracy"][-1],
              "final_bits_per_message": history["bits_per_message"][-1],
              "wall_s": time.perf_counter() - start, "jax_backend": jax.default_backend()}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"referential_{cfg.channel}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"final accuracy {result['final_accuracy']:.3f}, bits/message "
          f"{result['final_bits_per_message']:.2f}; wrote {path} ({result['wall_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
