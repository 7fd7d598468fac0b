"""The real menu in a pseudo-terminal: pick with arrows and space, run, see it, quit."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pexpect
import pytest
from test_menu import ROOT, menu_env, write_master

from hyperparameter_system.app import api
from hyperparameter_system.run import reaper
from hyperparameter_system.store.ledger import Ledger

DOWN, UP, ENTER, SPACE, CTRL_C = "\x1b[B", "\x1b[A", "\r", " ", "\x03"
# pexpect is no terminal emulator: it never answers prompt_toolkit's cursor-position request,
# which would cost a one-second wait at every prompt.
NO_CPR = {"PROMPT_TOOLKIT_NO_CPR": "1"}


def spawn_menu(config: Path, screen: list[str]) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["hyperparameter_system/run_experiments.py",
                                           "--config", str(config)],
                          cwd=str(ROOT), env={**menu_env(), **NO_CPR}, dimensions=(40, 140),
                          encoding="utf-8", timeout=15)
    child.logfile_read = _Tee(screen)
    return child


def quit_menu(child: pexpect.spawn, screen: list[str]) -> str:
    """Quit (the last entry, one up from the top), wait for the end; the whole screen."""
    child.expect("what next")
    child.send(UP + ENTER)
    child.expect(pexpect.EOF)
    child.close()
    text = "".join(screen)
    assert child.exitstatus == 0, text
    assert "Traceback" not in text
    return text


@pytest.mark.timeout(30)
def test_menu_in_a_terminal_runs_the_pick_and_records_it(tmp_path):
    config = write_master(tmp_path)
    screen: list[str] = []
    child = spawn_menu(config, screen)
    try:
        child.expect("what next")
        child.send(DOWN * 4 + ENTER)  # Custom: choose models and categories
        child.expect("Models to run")
        child.send(DOWN + SPACE + ENTER)  # m1.a and m2 were pre-selected: drop m2
        child.expect("Categories to run")
        child.send(SPACE + ENTER)  # optimizer and fake were pre-selected: drop optimizer
        child.expect(r"Run 2 of 2 experiment\(s\)")
        child.send(ENTER)  # yes, with the configured pruning (none)
        child.expect("run finished: 2 done")
        child.expect("what next")  # the menu comes back
        child.send(DOWN * 2 + ENTER)  # Choose models ...
        child.expect("Models to run")
        child.send(CTRL_C)  # ... Ctrl-C goes back a level
        quit_menu(child, screen)
    finally:
        child.close(force=True)
    rows = Ledger(api.load(config).system.ledger).rows()
    assert sorted((r.model, r.category, r.status) for r in rows) == [
        ("m1.a", "baseline", "done"), ("m1.a", "fake", "done")]


def sleepers_running(tmp_path: Path, screen: list[str]) -> tuple[Path, pexpect.spawn]:
    """The menu running the baselines and two 30 s sleepers, the baselines done."""
    config = write_master(tmp_path)
    config.write_text(config.read_text().replace("{fake.metric: 0.9}", "{fake.sleep: 30}"))
    child = spawn_menu(config, screen)
    try:
        child.expect("what next")
        child.send(DOWN * 3 + ENTER)  # Choose categories
        child.expect("Categories to run")
        child.send(SPACE + ENTER)  # drop optimizer: baselines and the 30 s sleepers
        child.expect(r"Run 4 of 4")
        child.send(ENTER)
        child.expect(r"done\s+m2 / baseline")
    except BaseException:
        child.close(force=True)
        raise
    time.sleep(0.5)
    return config, child


@pytest.mark.timeout(30)
def test_ctrl_c_during_a_run_ends_it_resumably_and_the_menu_comes_back(tmp_path):
    screen: list[str] = []
    config, child = sleepers_running(tmp_path, screen)
    try:
        child.send(CTRL_C)
        child.expect("interrupted: stopped experiments are marked interrupted")
        child.expect("what next")
        child.send(DOWN * 5 + ENTER)  # Rerun failed experiments: the two stopped ones
        child.expect(r"Run 2 of 2")
        child.send(DOWN * 5 + ENTER)  # past no pruning and the four rules: No
        quit_menu(child, screen)
    finally:
        child.close(force=True)
    rows = Ledger(api.load(config).system.ledger).rows()
    assert sorted((r.category, r.status) for r in rows) == [
        ("baseline", "done"), ("baseline", "done"), ("fake", "interrupted"),
        ("fake", "interrupted")]
    assert not any(reaper.alive(r.pid) for r in rows if r.pid)  # children ended


class _Tee:
    """pexpect's logfile: keeps everything the terminal showed."""

    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def write(self, data: str) -> None:
        self.sink.append(data)

    def flush(self) -> None:
        pass


@pytest.mark.timeout(40)
def test_three_ctrl_c_during_a_run_stop_it_and_leave_the_menu_open(tmp_path):
    """Ctrl-C pressed again and again to stop a run: the presses after the first belong to
    that stop (ignored while it ends the children, or within the grace after it), not to the
    main menu, which stays."""
    screen: list[str] = []
    _, child = sleepers_running(tmp_path, screen)
    try:
        for _ in range(3):
            child.send(CTRL_C)
            time.sleep(0.3)
        child.expect("interrupted: stopped experiments are marked interrupted")
        child.expect("what next")
        time.sleep(0.5)
        assert child.isalive(), "".join(screen)
        text = quit_menu(child, screen)
    finally:
        child.close(force=True)
    assert "bye" in text
