"""dcgenv.comms: channels with exact bit accounting, topologies, gradient taps, regularisers.

    from dcgenv import comms
    channel = comms.DDCL(delta=0.2)                   # or comms.make("ddcl", delta=0.2)
    z_hat, stats = channel.send(key, z, train=True)   # stats["bits"], stats["cost"]

    coded = comms.EntropyCoded(comms.DDCL(delta=0.2))  # a learned prior prices the symbols
    params = coded.init(key, 1, 8)                    # train them with the agents
    z_hat, stats = coded.send(key, z, train=True, params=params)

``dcgenv.comms.rangecoder`` (host-side, needs ``constriction``) writes the real bytes.

See docs/comms.md for the table of channels and a worked example.
"""

from dcgenv.comms.channels import (
    DDCL,
    DRU,
    Channel,
    Continuous,
    FakeQuant,
    GaussianNoise,
    GumbelSoftmax,
    Silent,
    Stats,
    as_channel,
    check_channel,
    static_dataclass,
    straight_through,
)
from dcgenv.comms.coding import (
    CODES,
    bit_length,
    code_length,
    decode,
    empirical_entropy_bits,
    encode,
)
from dcgenv.comms.diagnostics import gsnr, score_function_loss
from dcgenv.comms.entropy import CategoricalPrior, EntropyCoded, Gated
from dcgenv.comms.registry import CHANNELS, make
from dcgenv.comms.regularisers import (
    ddcl_cost,
    effective_rank,
    expected_length,
    fisher_rank,
    kl_standard_normal,
    nuclear_norm,
    send_probs,
)
from dcgenv.comms.stop import WithStop
from dcgenv.comms.taps import stop_incoming, tap, value_and_grad_with_taps
from dcgenv.comms.topology import (
    attention,
    broadcast_mean,
    gated_mean,
    masked_mean,
    others,
    vision_adjacency,
)

__all__ = [
    "CHANNELS", "CODES", "CategoricalPrior", "Channel", "Continuous", "DDCL", "DRU",
    "EntropyCoded", "FakeQuant", "GaussianNoise", "Gated", "GumbelSoftmax", "Silent", "Stats",
    "WithStop", "as_channel", "attention", "bit_length", "broadcast_mean",
    "check_channel", "code_length", "ddcl_cost", "decode", "effective_rank",
    "empirical_entropy_bits", "encode", "expected_length", "fisher_rank", "gated_mean", "gsnr",
    "kl_standard_normal", "make", "masked_mean", "nuclear_norm", "others",
    "score_function_loss", "send_probs", "static_dataclass", "stop_incoming", "straight_through",
    "tap", "value_and_grad_with_taps", "vision_adjacency",
]
