"""gymnax's environment base class and spaces, without importing the whole gymnax package.

``import gymnax`` (and so any ``from gymnax.environments... import``) first runs
``gymnax/environments/__init__.py``, which imports every gymnax environment and with them
seaborn, matplotlib and scipy: about 2.5 s, two thirds of what ``import dcgenv`` took. dcgenv
uses two gymnax modules, ``gymnax.environments.environment`` and
``gymnax.environments.spaces``, which import nothing from gymnax itself. When gymnax is not
imported yet, they are loaded here from gymnax's installed files under their own module names
(in ``sys.modules``), so a later ``import gymnax`` reuses them and
``gymnax.environments.spaces.Discrete is dcgenv.spaces.Discrete`` holds in either import order.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def _load(name: str) -> ModuleType:
    full = f"gymnax.environments.{name}"
    if full in sys.modules or "gymnax" in sys.modules:
        return importlib.import_module(full)
    spec = importlib.util.find_spec("gymnax")  # top level: finds the package, runs nothing
    path = Path(spec.origin).parent / "environments" / f"{name}.py" if spec else None
    if path is None or not path.is_file():
        return importlib.import_module(full)
    module_spec = importlib.util.spec_from_file_location(full, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[full] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full]
        raise
    return module


Environment = _load("environment").Environment
_spaces = _load("spaces")
Box, Dict, Discrete, Space, Tuple = (_spaces.Box, _spaces.Dict, _spaces.Discrete, _spaces.Space,
                                     _spaces.Tuple)
