"""One module per environment family; importing a module registers its ids."""

from dcgenv.envs import (
    cournot,  # noqa: F401
    gridworld,  # noqa: F401
    kyle,  # noqa: F401
    negotiation,  # noqa: F401
    predator_prey,  # noqa: F401
    predator_prey_magym,  # noqa: F401
    public_goods,  # noqa: F401
    referential,  # noqa: F401
    rubinstein,  # noqa: F401
    supply_function,  # noqa: F401
    traffic_junction,  # noqa: F401
    witsenhausen,  # noqa: F401
    witsenhausen_channel,  # noqa: F401
    witsenhausen_misaligned,  # noqa: F401
    witsenhausen_multistage,  # noqa: F401
    witsenhausen_vector,  # noqa: F401
)
