"""Claim: `genloop demo` runs the whole loop on 5,000 MNIST digits in under 5 minutes on 2 CPU cores.

Runs the real command in a fresh temporary workspace (as a user would, after setup) and
reports each stage's seconds as the command printed them, the total wall time, and the
ratio to the 300-second budget. A second run in the same workspace measures the cached
path (every stage skipped). Usage::

    .venv/bin/python benchmarks/demo_wall_time.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_SECONDS = 300.0
STAGE_LINE = re.compile(r"✓ (\w+)\s+.*\((\d+\.\d)s\)\s*$")


def run_demo(directory: Path) -> tuple[float, str]:
    env = {**os.environ, "GENLOOP_NO_PROGRESS": "1", "COLUMNS": "200"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "genloop.cli.main", "demo", str(directory)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, result.stderr


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "demo"
        first, output = run_demo(directory)
        cached, _ = run_demo(directory)
    for line in output.splitlines():
        match = STAGE_LINE.search(line)
        if match:
            print(f"{match.group(1):<9} {float(match.group(2)):6.1f}s")
    share = first / BUDGET_SECONDS
    print(f"\ngenloop demo, fresh workspace: {first:.1f}s wall ({share:.2f} of the 5-minute budget)")
    print(f"genloop demo, again (all cached): {cached:.1f}s wall")


if __name__ == "__main__":
    main()
