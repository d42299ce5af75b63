"""YAML configs and ``key=value`` overrides -> a validated :class:`agents.config.Config`.

A config file is a flat YAML mapping of the chosen algorithm's config fields
(``configs/*.yaml``; ``algorithm`` picks ``PPOConfig`` or ``IQLConfig``, and a key that
algorithm does not take is an error naming the keys it does take). Overrides are
``key=value`` with the value read as YAML (``lr=1e-3``, ``anneal_lr=false``,
``channel_kwargs={delta: 0.1}``); a dotted key sets one entry of a mapping field
(``env_kwargs.vision=1``, ``channel_kwargs.delta=0.1``). Any unknown key or bad value raises
``ValueError`` naming the key and the allowed values, before anything compiles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agents.config import Config

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "configs" / "mappo_commnet_traffic_junction_easy.yaml"
MAPPINGS = ("env_kwargs", "channel_kwargs", "curriculum")


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    configs = ', '.join(sorted(p.name for p in (ROOT / 'configs').glob('*.yaml')))
    if path.is_dir():
        raise ValueError(f"config {str(path)!r} is a directory; pass one YAML file, e.g. "
                         f"{str(path / 'NAME.yaml')!r} (the repository's configs/: {configs})")
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist; configs: {configs}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {_yaml_problem(err)}"
                         ) from None
    if not isinstance(values, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of config keys")
    return values


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as err:
            raise ValueError(f"override {item!r}: the value is not valid YAML: "
                             f"{_yaml_problem(err)}") from None
        field, dot, sub = key.partition(".")
        if dot:
            if field not in MAPPINGS:
                raise ValueError(f"override {item!r}: only {', '.join(MAPPINGS)} take "
                                 "dotted keys")
            values[field] = {**values.get(field, {}), sub: value}
        else:
            values[key] = value
    return values


def load(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """The validated config from ``path`` (default: the default baseline) and overrides."""
    return Config.from_dict(apply_overrides(read_yaml(path or DEFAULT), list(overrides)))


def _yaml_problem(err: yaml.YAMLError) -> str:
    """``line L, column C: problem`` of a YAML error (1-based, as editors count)."""
    mark = getattr(err, "problem_mark", None)
    what = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark else what
