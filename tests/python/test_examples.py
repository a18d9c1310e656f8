"""The examples run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("script", ["in_process.py", "server_with_openai_sdk.py", "plugins_demo.py"])
def test_example_runs(script: str) -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr


def test_example_config_is_valid() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ferrogate", "check-config", str(EXAMPLES / "ferrogate.yaml")],
        capture_output=True,
        text=True,
        timeout=20,
        env={"OPENAI_API_KEY": "sk-example", "PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    assert "valid" in out.stdout and "local" in out.stdout
