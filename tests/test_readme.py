"""Every command the README shows, run as written: parsed from the README itself, so new lines are covered too.

Commands that train are shortened (a few steps, small data limits, few search trials); placeholders are filled with
real paths: `DIR` (MNIST IDX files), `PATH` (a CIFAR-10 tarball), `outputs/runs/<date>/<time>` and
`outputs/multirun/<date>/<time>` (the newest folder the earlier commands wrote). Everything else runs unchanged.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SHARED_DATA, write_cifar_tarball

README = REPO / "README.md"
# appended to commands that train, so that each takes seconds
SHORTER = {
    "train": ["trainer.max_steps=2", "trainer.eval_every_steps=1", "dataset.limit.train=256", "dataset.limit.val=64",
              "dataset.limit.test=64"],
    "bench": ["bench.steps=2", "bench.warmup=0", "bench.eval_repeats=1", "dataset.limit.val=64"],
}
SHORTER["reproduce"] = SHORTER["train"]
SEARCH = ["hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=1"]
SETUP = re.compile(r"^python3 -m venv \.venv && \. \.venv/bin/activate && (pip install .+?) && (.+)$")


def readme_commands() -> list[str]:
    """The README's indented code lines, without their trailing comments."""
    commands, previous_blank = [], True
    in_block = False
    for line in README.read_text().splitlines():
        if line.startswith("    ") and (in_block or previous_blank):
            in_block = True
            commands.append(re.sub(r"\s+#\s.*$", "", line.strip()))
        else:
            in_block = False
        previous_blank = not line.strip()
    return [c for c in commands if c]


def shortened(command: str) -> str:
    """`regbench SUB ...` with the overrides that make it quick (after any comment-free argument list)."""
    words = command.split()
    sub = words[1] if len(words) > 1 else ""
    if "--help" in words or "--cfg" in words:
        return command
    extra = SHORTER.get(sub, [])
    if any(w.startswith("hparams_search=") for w in words):
        extra = [*extra, *SEARCH]
    return " ".join([command, *extra])


class Workspace:
    """One folder the commands share, as a reader's working directory would be."""

    def __init__(self, root: Path) -> None:
        self.root, self.cwd = root, root / "work"
        self.cwd.mkdir()
        self.cifar: Path | None = None

    def newest(self, kind: str) -> str:
        found = sorted((self.cwd / "outputs" / kind).glob("*/*"), key=lambda p: p.stat().st_mtime)
        assert found, f"the README refers to outputs/{kind}/<date>/<time> before any command wrote one"
        return str(found[-1].relative_to(self.cwd))

    def fill(self, command: str) -> str:
        for kind in ("runs", "multirun"):
            if f"outputs/{kind}/<date>/<time>" in command:
                command = command.replace(f"outputs/{kind}/<date>/<time>", self.newest(kind))
        command = re.sub(r"dataset\.data_dir=DIR\b", f"dataset.data_dir={SHARED_DATA / 'mnist'}", command)
        if re.search(r"dataset\.data_file=PATH\b", command):
            self.cifar = self.cifar or write_cifar_tarball(self.root / "cifar-10-python.tar.gz")
            command = re.sub(r"dataset\.data_file=PATH\b", f"dataset.data_file={self.cifar}", command)
        leftover = re.findall(r"<\w+>|\b(?:DIR|PATH|FILE)\b", command)
        assert not leftover, f"no filler for {leftover} in {command!r}: teach tests/test_readme.py"
        return command

    def run(self, command: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **(env or {})}
        proc = subprocess.run(["bash", "-c", command], cwd=cwd or self.cwd, capture_output=True, text=True,
                              timeout=1800, env=env)
        assert proc.returncode == 0, f"{command}\nexited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("readme"))


def test_the_readme_shows_commands() -> None:
    commands = readme_commands()
    assert len(commands) >= 5 and all(c.startswith(("regbench ", "python3 ")) for c in commands), commands


@pytest.mark.parametrize("command", readme_commands())
@pytest.mark.slow
def test_readme_command(command: str, workspace: Workspace, tmp_path: Path) -> None:
    setup = SETUP.match(command)
    if setup and "pytest" in setup.group(2):
        # the whole suite is what CI runs (.ci/run), around this very test suite; the quick tier is it without `slow`
        ci = (REPO / ".ci" / "run").read_text()
        assert command.removesuffix(' -m "not slow"').split("&& ", 1)[1] in ci
        return
    if setup:
        # a fresh venv in a copy of the repository, installed as the README says (not editable)
        copy = tmp_path / "regbench"
        shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(".venv", ".git", "outputs", "*.egg-info",
                                                                   "__pycache__", ".pytest_cache"))
        prefix = command[: setup.start(2)]
        workspace.run(prefix + shortened(workspace.fill(setup.group(2))), cwd=copy,
                      env={"PATH": os.environ["PATH"], "VIRTUAL_ENV": ""})
        assert list((copy / "outputs" / "runs").glob("*/*/summary.json"))
        return
    workspace.run(shortened(workspace.fill(command)))
