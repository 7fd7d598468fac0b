"""SIGTERM and SIGHUP stop a run on a local Ray as Ctrl-C does: the runner started with
`--executor ray` (no address: it starts its own Ray on 127.0.0.1) gets the signal while two
long fake trainings run; it exits promptly with the interrupted code, its rows are
`interrupted`, no process of the experiments survives, and nothing of the Ray it started
(gcs_server, raylet, agents, workers) is left behind. SIGTERM to the runner alone is `kill`;
a signal to the whole process group is a closed terminal (SIGHUP) or a scheduler (SIGTERM)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from parallel_support import ROOT, fake_settings  # noqa: E402
from test_ray import _listening, _loopback  # noqa: E402

from hyperparameter_system.app import api  # noqa: E402
from hyperparameter_system.core.states import Status  # noqa: E402
from hyperparameter_system.run import reaper  # noqa: E402

EXIT_INTERRUPTED = 130  # what the local executor's Ctrl-C, SIGTERM and SIGHUP exit with
START_S = 120.0  # a local Ray on two busy cores starts slowly
EXIT_S = 30.0


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "group"), [(signal.SIGTERM, False), (signal.SIGHUP, True),
                                               (signal.SIGTERM, True)],
                         ids=["sigterm-runner", "sighup-group", "sigterm-group"])
def test_a_stop_signal_ends_a_ray_run_as_ctrl_c_does(tmp_path, signum, group):
    options = [{"fake.sleep": 300, "fake.metric": round(0.1 * (i + 1), 2)} for i in range(2)]
    settings = fake_settings(tmp_path, options, {"max_parallel": 2, "gpus": "none",
                                                 "heartbeat_s": 0.5})
    ids = [e.id for e in api.select(settings)]
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS", "TMPDIR")}
    ray_tmp = tempfile.mkdtemp(prefix="hpray")  # short: Ray's unix sockets live under it
    env.update(RAY_TMPDIR=ray_tmp, HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    proc = subprocess.Popen([sys.executable, "-m", "hyperparameter_system.experiment_runner",
                             "--config", str(settings.path), "--all", "--executor", "ray"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_running(proc, settings, ids)
        trainers = [pid for i in ids for pid in reaper.experiment_pids(i)]
        assert trainers, "no training process seen while the rows are running"
        # Ray's own processes have them blocked; the scripts must get them (a graceful stop)
        assert all(not _blocked(pid) & {signal.SIGTERM, signal.SIGHUP} for pid in trainers)
        ray_procs = _ray_processes(ray_tmp)
        commands = " ".join(ray_procs.values())
        assert "raylet" in commands and "gcs_server" in commands, commands
        for local, pid in _listening(set(ray_procs)):
            assert _loopback(local), f"a Ray process listens on {local}: {ray_procs[pid]}"

        sent = time.monotonic()
        os.killpg(proc.pid, signum) if group else proc.send_signal(signum)
        try:
            out, _ = proc.communicate(timeout=EXIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the runner still runs {EXIT_S:g} s after {signum.name}")
        took = time.monotonic() - sent

        assert proc.returncode == EXIT_INTERRUPTED, out
        assert "SIGTERM received" not in out and "Traceback" not in out, out
        statuses = api.open_ledger(settings).statuses(ids)
        assert all(statuses[i] == Status.INTERRUPTED for i in ids), statuses
        assert [i for i in ids if reaper.experiment_pids(i)] == []
        time.sleep(0.5)  # orphans reparented to init: give it a moment to reap them
        left = {pid: cmd for pid, cmd in ray_procs.items() if _alive(pid, cmd)}
        left.update(_ray_processes(ray_tmp))
        assert left == {}, f"left behind after {signum.name}: {left}"
        print(f"{signum.name}{' to the group' if group else ''}: exited in {took:.1f} s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for i in ids:
            reaper.reap(i)
        for pid in _ray_processes(ray_tmp):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _wait_running(proc: subprocess.Popen, settings, ids: list[str]) -> None:
    deadline = time.monotonic() + START_S
    ledger = api.open_ledger(settings)
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        statuses = ledger.statuses(ids) if ledger.path.exists() else {}
        if all(statuses.get(i) == Status.RUNNING for i in ids) and all(
                reaper.experiment_pids(i) for i in ids):
            return
        time.sleep(0.3)
    pytest.fail(f"the rows were not running within {START_S:g} s")


def _ray_processes(ray_tmp: str) -> dict[int, str]:
    """{pid: command line} of the live processes of the Ray using `ray_tmp`: their command line
    names its session folder, or their environment carries RAY_TMPDIR (agents and workers
    rename themselves `ray::...`). Zombies are dead: they only wait for their parent."""
    found = {}
    needle = ray_tmp.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in "ZX" and (needle in cmd or b"RAY_TMPDIR=" + needle in environ):
            found[int(entry.name)] = cmd.replace(b"\0", b" ").decode(errors="replace")
    return found


def _alive(pid: int, cmd: str) -> bool:
    """Still running, and still the same program (not a reused pid)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        now = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except (OSError, IndexError):
        return False
    return state not in "ZX" and now == cmd


def _blocked(pid: int) -> set[int]:
    """The signals `pid` blocks (SigBlk of /proc/<pid>/status, a bit mask from signal 1)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split()[1], 16)
            return {n for n in range(1, 65) if mask >> (n - 1) & 1}
    return set()
