"""What a project that depends on dcgenv meets: the import, its cost, the installed files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout


def test_import_pulls_in_no_learner_or_plotting_module():
    loaded = run_python(
        "import sys, dcgenv\n"
        "print(sorted(m for m in ('agents', 'baselines', 'optax', 'distrax', 'orbax', 'flashbax',"
        " 'chex', 'seaborn', 'matplotlib', 'pandas', 'scipy', 'constriction', 'jaxmarl')"
        " if m in sys.modules))")
    assert loaded.strip() == "[]"


@pytest.mark.parametrize("first", ["dcgenv", "gymnax"])
def test_gymnax_classes_are_shared_in_either_import_order(first):
    """dcgenv loads gymnax's base class and spaces without gymnax's package import; a later
    (or earlier) ``import gymnax`` must see the very same classes, so isinstance checks and
    gymnax's own code work across both."""
    other = "gymnax" if first == "dcgenv" else "dcgenv"
    out = run_python(
        f"import {first}, {other}\n"
        "from gymnax.environments import environment, spaces\n"
        "print(spaces.Discrete is dcgenv.spaces.Discrete, spaces.Box is dcgenv.spaces.Box,\n"
        "      environment.Environment is dcgenv.core.Environment, callable(gymnax.make))")
    assert out.split() == ["True"] * 4


def test_package_description_stands_alone():
    """The package index shows docs/package.md: no link into the repository (it could not
    follow one), and the ids it lists are registered."""
    import dcgenv

    text = (ROOT / "docs" / "package.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert all(link.startswith(("https://", "http://")) for link in links), links
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'readme = "docs/package.md"' in pyproject
    for env_id in re.findall(r"`([A-Z][A-Za-z]+-v0)`", text):
        assert env_id in dcgenv.registered(), env_id
