"""What the report says about the software and machine: read from this machine when the report is written (the run
folders do not record them), each line saying so."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def version(*distributions: str) -> str | None:
    """The installed version of the first of `distributions` that is installed."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def git_commit() -> str | None:
    """The commit of the regbench source when it runs from a git checkout, marked when it has uncommitted changes."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(PACKAGE_DIR), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    return commit + (" (with uncommitted changes)" if git("status", "--porcelain", "--", ".") else "")


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def lines() -> list[str]:
    """The environment as Markdown list items."""
    import os

    return [f"- regbench {version('regbench') or 'not installed as a package'}, git commit "
            f"{git_commit() or 'not available (not a git checkout)'}",
            f"- PaddlePaddle {version('paddlepaddle', 'paddlepaddle-gpu') or 'not installed'}, "
            f"Python {platform.python_version()}",
            f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; {platform.system()} {platform.release()}",
            "- (read from the machine that wrote this report: the run folders do not record them)"]
