"""Every fenced code block of README.md and docs/**/*.md, run or checked, so docs follow the API.

Executed:

- ```python blocks: in order, one namespace per file (a later block may use the names of an
  earlier one, as a reader would), in a temporary working directory. One test per file
  (skipped where an extra the file needs, ``NEEDS``, is not installed).

Checked, not run (one test per block, id ``file:line``):

- ```bash, ```sh, ```console and unlabelled blocks: every command (``\\`` continues a line,
  ``&&``, ``||``, ``;`` and ``|`` separate commands; ``$`` prompts and ``NAME=value`` prefixes
  are dropped; in ```console blocks only the ``$`` lines), from the repository root:
  - ``python -m MODULE ARGS`` and ``python SCRIPT.py ARGS`` (any ``python*`` executable): the
    module or script exists and its own argparse parser accepts ARGS: its ``main()`` runs with
    ``sys.argv`` set until ``parse_args`` returns, then stops. For ``baselines.train`` the
    config is then loaded with ``baselines.config.load``, so a wrong config path or key fails.
    Other checks a script makes after ``parse_args`` are not reached.
  - ``pip install``: every extra named (``".[dev]"``) exists in pyproject.toml.
  - ``pytest``: the files named exist; ``-n`` needs pytest-xdist.
  - any other command (git, cd, sourcing a venv): not checked.
- ```yaml: parsed; a mapping with an ``algorithm`` key is validated as a full training config
  (``agents.config.Config.from_dict``). ```json: parsed.
- ```text blocks (program output, layouts): not checked.

A block that must not run is skipped only with ``<!-- no-test: reason -->`` on the line just
before its fence; the reason is required. ``test_checks_catch_mistakes`` shows the checks fail
on wrong commands.

Also here: ``docs/make_figures.py`` writes into ``--out DIR``, never into the tracked
``docs/images`` unless named.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON, SHELL, DATA, TEXT = {"python", "py"}, {"bash", "sh", "console", ""}, {"yaml", "json"}, {
    "text"}
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)\s*$")
NO_TEST = re.compile(r"^\s*<!--\s*no-test:(.*?)-->\s*$")


class Block(NamedTuple):
    file: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    skip: str | None  # the no-test reason

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    lines, out, i = path.read_text().splitlines(), [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j].strip().startswith(fence[0] * len(fence))
                    and not lines[j].strip().strip(fence[0])), len(lines))
        body = "\n".join(x[len(indent):] if x.startswith(indent) else x for x in lines[i + 1:end])
        marker = NO_TEST.match(lines[i - 1]) if i else None
        skip = marker.group(1).strip() if marker else None
        out.append(Block(str(path.relative_to(ROOT)), i + 1, lang.lower(), body, skip))
        i = end + 1
    return out


BLOCKS = [b for path in DOCS for b in read_blocks(path)]
PY_FILES = sorted({b.file for b in BLOCKS if b.lang in PYTHON and not b.skip})
CHECKED = [b for b in BLOCKS if b.lang in SHELL | DATA and not b.skip]
NEEDS = {"docs/adapters.md": ("jaxmarl", "pettingzoo"),  # the dev extra installs them
         "docs/comms.md": ("constriction",)}


def test_blocks_found_and_labelled():
    assert len(PY_FILES) >= 5 and len(CHECKED) >= 5, "the block parser found too few blocks"
    unknown = [f"{b.id} ```{b.lang}" for b in BLOCKS if b.lang not in PYTHON | SHELL | DATA | TEXT]
    assert not unknown, f"blocks in a language this test neither runs nor checks: {unknown}"
    no_reason = [b.id for b in BLOCKS if b.skip == ""]
    assert not no_reason, f"<!-- no-test: reason --> without a reason: {no_reason}"


# ---------------------------------------------------------------------------- python blocks

@pytest.mark.parametrize("file", PY_FILES)
def test_python_blocks_run(file, tmp_path, monkeypatch):
    for name in NEEDS.get(file, ()):
        pytest.importorskip(name)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    ran = 0
    for block in (b for b in BLOCKS if b.file == file and b.lang in PYTHON):
        if block.skip:
            continue
        # blank lines first, so a traceback's line number is the markdown file's
        code = compile("\n" * block.line + block.text, str(ROOT / file), "exec")
        exec(code, namespace)
        ran += 1
    assert ran


# ----------------------------------------------------------------------------- shell blocks

def commands(block: Block) -> list[list[str]]:
    """The commands of a shell block, each a list of words without env-var prefixes."""
    lines = block.text.splitlines()
    if block.lang == "console":
        lines = [x.strip()[2:] for x in lines if x.strip().startswith("$ ")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        lex = shlex.shlex(line.strip().removeprefix("$ "), posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        command: list[str] = []
        for word in [*lex, ";"]:
            if word in {"&&", "||", ";", "|", "&"}:
                while command and re.fullmatch(r"[A-Za-z_]\w*=.*", command[0]):
                    command.pop(0)
                if command:
                    out.append(command)
                command = []
            else:
                command.append(word)
    return out


class _Parsed(BaseException):  # not an Exception: a module's `except Exception` lets it by
    pass


_SCRIPTS: dict[str, object] = {}


def load_entry(words: list[str]):
    """The module of ``python -m MODULE ...`` or ``python SCRIPT.py ...``."""
    if words[0] == "-m":
        name = words[1]
        spec = importlib.util.find_spec(name)
        assert spec is not None, f"no module {name!r}"
        if spec.submodule_search_locations is not None:  # a package: python -m runs __main__
            name += ".__main__"
        return importlib.import_module(name)
    path = ROOT / words[0]
    assert words[0].endswith(".py") and path.is_file(), f"no script {words[0]!r}"
    if words[0] not in _SCRIPTS:
        spec = importlib.util.spec_from_file_location(f"_docs_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _SCRIPTS[words[0]] = module
    return _SCRIPTS[words[0]]


def parse_args_of(words: list[str], monkeypatch) -> argparse.Namespace:
    """The arguments of ``python WORDS`` as its ``main()`` parses them: ``main()`` runs with
    ``sys.argv`` set until its parser returns, then stops (as does a module whose import runs
    ``main()``)."""
    real, parsed = argparse.ArgumentParser.parse_args, []

    def parse_args(self, args=None, namespace=None):
        parsed.append(real(self, args, namespace))
        raise _Parsed

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", parse_args)
        m.setattr(sys, "argv", words[1:] if words[0] == "-m" else words)
        try:
            module = load_entry(words)
            assert hasattr(module, "main"), f"{module.__name__} has no main() to parse with"
            module.main()
        except _Parsed:
            return parsed[0]
        except SystemExit as err:
            raise AssertionError(f"its parser refuses the arguments (exit {err.code}; the "
                                 "error is on stderr)") from None
    raise AssertionError(f"{module.__name__}.main() returned without parsing arguments")


def check_python(words: list[str], monkeypatch) -> None:
    args = parse_args_of(words, monkeypatch)
    if words[:2] == ["-m", "baselines.train"] and not args.resume:
        from baselines.config import load

        load(args.config, args.overrides)


def check_pip(words: list[str]) -> None:
    if words[:1] != ["install"]:
        return
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for word in words[1:]:
        m = re.fullmatch(r"(\.|dcgenv)\[(.*)\]", word)
        for extra in m.group(2).split(",") if m else ():
            assert extra.strip() in extras, f"no extra {extra!r}; pyproject.toml: {list(extras)}"


def check_pytest(words: list[str]) -> None:
    if "-n" in words or any(w.startswith("--numprocesses") for w in words):
        assert importlib.util.find_spec("xdist"), "-n needs pytest-xdist"
    for word in words:
        if not word.startswith("-") and ("/" in word or ".py" in word):
            assert (ROOT / word.split("::")[0]).exists(), f"pytest: no file {word!r}"


def check_data(block: Block) -> None:
    if block.lang == "json":
        json.loads(block.text)
        return
    values = yaml.safe_load(block.text)
    if isinstance(values, dict) and "algorithm" in values:
        from agents.config import Config

        Config.from_dict(values)


def check_block(block: Block, monkeypatch) -> None:
    if block.lang in DATA:
        check_data(block)
        return
    monkeypatch.chdir(ROOT)  # the docs' commands run from the repository root
    for words in commands(block):
        head = Path(words[0]).name
        try:
            if re.fullmatch(r"python[\d.]*", head):
                check_python(words[1:], monkeypatch)
            elif head in ("pip", "pip3"):
                check_pip(words[1:])
            elif head == "pytest":
                check_pytest(words[1:])
        except Exception as err:
            raise AssertionError(f"{block.id}: {shlex.join(words)}: {err}") from err


@pytest.mark.parametrize("block", CHECKED, ids=[b.id for b in CHECKED])
def test_block_checks(block, monkeypatch):
    check_block(block, monkeypatch)


@pytest.mark.parametrize("lang, text, error", [
    ("bash", "python -m baselines.train --config configs/nope.yaml", "does not exist"),
    ("bash", "python -m baselines.train lr=1e-3 \\\n    no_such_key=1", "no_such_key"),
    ("bash", "X=1 python -m baselines.evaluate  # no --checkpoint", "refuses"),
    ("console", "$ cd /tmp && python -m baselines.nope\noutput", "no module"),
    ("sh", "python3 benchmarks/nope.py --out x", "no script"),
    ("", 'pip install -e ".[agents,nope]"', "no extra 'nope'"),
    ("bash", "pytest -q tests/test_nope.py::test_x", "no file"),
    ("yaml", "algorithm: mappo\nno_such_key: 1", "no_such_key"),
], ids=["config-path", "config-key", "arguments", "module", "script", "extra", "pytest-file",
        "yaml-config"])
def test_checks_catch_mistakes(lang, text, error, monkeypatch):
    with pytest.raises((AssertionError, ValueError), match=re.escape(error)):
        check_block(Block("bad.md", 1, lang, text, None), monkeypatch)


# ---------------------------------------------------------------------- docs/make_figures.py

def test_make_figures_default_out_is_untracked(monkeypatch):
    for figures in ([], ["gif"], ["frames", "witsenhausen", "referential"]):
        args = parse_args_of(["docs/make_figures.py", *figures], monkeypatch)
        assert args.out.resolve() == ROOT / "runs" / "figures"  # runs/ is in .gitignore
    args = parse_args_of(["docs/make_figures.py", "gif", "--out", "docs/images"], monkeypatch)
    assert args.out == Path("docs/images")


def test_make_figures_gif_writes_to_out(tmp_path):
    tracked = ROOT / "docs" / "images" / "traffic_junction.gif"
    before = tracked.read_bytes()
    load_entry(["docs/make_figures.py"]).main(["gif", "--out", str(tmp_path / "figs")])
    gif = tmp_path / "figs" / "traffic_junction.gif"
    assert gif.read_bytes()[:6] == b"GIF89a"
    assert tracked.read_bytes() == before
