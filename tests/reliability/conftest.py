"""Every reliability test ends with none of its experiment processes left alive."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from relkit import experiment_pids, wait_for

from hyperparameter_system import experiment_runner


@pytest.fixture(autouse=True)

def _no_leftovers(tmp_path: Path):
    """Whatever a test launched is gone when it ends (and is killed if not, so one failing test
    cannot leave processes behind for the next)."""
    yield
    if not wait_for(lambda: not experiment_pids(tmp_path), 10):
        left = experiment_pids(tmp_path)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        pytest.fail(f"processes left running: {left}")


@pytest.fixture
def cli(capsys, monkeypatch):
    """The runner's CLI in this process: (exit code, stdout, stderr). A test file may define its
    own (test_bad_input's runs it as a subprocess)."""
    monkeypatch.setattr(signal, "signal", lambda *a: None)

    def run(*argv: str) -> tuple[int, str, str]:
        code = experiment_runner.main(argv)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
