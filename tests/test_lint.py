"""The tree passes its linters: ruff (config in pyproject.toml) and snakefmt for the workflow files."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean():
    r = _run("ruff", "check", "--no-cache", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def test_snakefmt_is_clean():
    r = _run("snakefmt", "--check", "Snakefile", "rules")
    assert r.returncode == 0, r.stdout + r.stderr
