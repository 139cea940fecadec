from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def genloop(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `genloop` command (a subprocess, as a user would) in `cwd`."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "GENLOOP_DATABASE_URL"}
        env["GENLOOP_NO_PROGRESS"] = "1"
        env["COLUMNS"] = "200"
        return subprocess.run(
            [sys.executable, "-m", "genloop.cli.main", *args],
            cwd=cwd or tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
