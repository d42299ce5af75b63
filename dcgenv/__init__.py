"""dcgenv: multi-agent environments in pure JAX for research on learned communication.

    env, params = dcgenv.make("Witsenhausen-v0")
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, actions, params)
"""

from dcgenv import comms, envs, spaces  # noqa: F401  (importing envs registers every env)
from dcgenv.core import EnvParams, EnvState, MultiAgentEnv
from dcgenv.registry import make, register, registered
from dcgenv.rollouts import Transition, random_policy, rollout
from dcgenv.wrappers import LogWrapper, OptimisticResetVecEnv, Wrapper, summarize

__version__ = "0.1.0"

__all__ = ["EnvParams", "EnvState", "LogWrapper", "MultiAgentEnv", "OptimisticResetVecEnv",
           "Transition", "Wrapper", "comms", "make", "random_policy", "register", "registered",
           "rollout", "spaces", "summarize"]
