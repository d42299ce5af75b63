"""One module per environment family; importing a module registers its ids."""

from dcgenv.envs import witsenhausen  # noqa: F401
