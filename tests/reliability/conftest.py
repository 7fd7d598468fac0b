"""Every reliability test ends with none of its experiment processes left alive."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from relkit import experiment_pids, wait_for


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
