"""A real single-node Slurm for the tests: munged, slurmctld and slurmd in a temp folder.

Everything (key, sockets, state, spool, pid and log files, slurm.conf) lives under one folder;
the daemons listen on 127.0.0.1 only (`CommunicationParameters=NoInAddrAny`), on free ports, as
root without systemd or cgroups (`proctrack/linuxproc`, `task/none`). `SLURM_CONF` points the
client commands (sbatch, squeue, scontrol, scancel) at it. Debian's `slurm-wlm` and `munge`
provide the binaries (`make slurm` installs them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"
BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol",
            "scancel", "sinfo")
START_TIMEOUT_S = 30.0
CPUS = 4  # more than these machines have: four 1-CPU jobs at once (config_overrides)


def missing() -> list[str]:
    """The binaries this machine lacks (an empty list: a cluster can be started)."""
    found = [b for b in BINARIES if shutil.which(b) or Path("/usr/sbin", b).exists()]
    return [b for b in BINARIES if b not in found]


def _binary(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class SlurmCluster:
    """One node (this host, as `node`) and one partition (`debug`), started by `start()`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.node = socket.gethostname().split(".")[0]
        self.conf = folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.pids: list[Path] = []

    def _write(self) -> None:
        f = self.folder
        for sub in ("state", "spool", "munge"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(f / "munge", 0o700)
        lines = [
            "ClusterName=hpsys",
            f"SlurmctldHost={self.node}({LOOPBACK})",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge",
            f"AuthInfo=socket={f / 'munge' / 'munge.socket'}",
            "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny",
            f"StateSaveLocation={f / 'state'}", f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}", f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'slurmctld.log'}", f"SlurmdLogFile={f / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/builtin", "SlurmdParameters=config_overrides",
            "SchedulerParameters=sched_interval=1,batch_sched_delay=0",
            "MpiDefault=none", "ReturnToService=2", "JobRequeue=1", "MinJobAge=600",
            "KillWait=3", "InactiveLimit=0", "OverTimeLimit=0", "SlurmctldTimeout=30",
            "SlurmdTimeout=60", "MessageTimeout=10", "SchedulerTimeSlice=5",
            f"NodeName={self.node} NodeAddr={LOOPBACK} CPUs={CPUS} RealMemory=4096 State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> SlurmCluster:
        """Start munged, slurmctld, slurmd; return once the node takes jobs, else raise with
        the daemons' last log lines."""
        f = self.folder
        self._write()
        key, sock = f / "munge" / "munge.key", f / "munge" / "munge.socket"
        self._run(_binary("mungekey"), "-c", "-f", "-k", str(key))
        self._run(_binary("munged"), "--force", f"--socket={sock}", f"--key-file={key}",
                  f"--pid-file={f / 'munge' / 'munged.pid'}", f"--log-file={f / 'munged.log'}",
                  f"--seed-file={f / 'munge' / 'munged.seed'}")
        self.pids.append(f / "munge" / "munged.pid")
        self._run(_binary("slurmctld"), "-c", "-f", str(self.conf))
        self.pids.append(f / "slurmctld.pid")
        self._run(_binary("slurmd"), "-f", str(self.conf))
        self.pids.append(f / "slurmd.pid")
        deadline = time.time() + START_TIMEOUT_S
        state = ""
        while time.time() < deadline:
            state = self.sinfo()
            if state in ("idle", "mixed", "allocated"):
                return self
            time.sleep(0.3)
        raise RuntimeError(f"the test Slurm's node is {state or 'unknown'} after "
                           f"{START_TIMEOUT_S:g} s:\n{self.logs()}")

    def sinfo(self) -> str:
        out = subprocess.run([_binary("sinfo"), "-h", "-N", "-o", "%T"], env=self.env,
                             capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip().rstrip("*~#")

    def logs(self, lines: int = 15) -> str:
        parts = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.folder / name
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                parts.append(f"--- {name}\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def _run(self, *argv: str) -> None:
        out = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=30,
                             check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}: "
                               f"{(out.stderr or out.stdout).strip()}\n{self.logs()}")

    def scontrol(self, *args: str) -> str:
        out = subprocess.run([_binary("scontrol"), *args], env=self.env, capture_output=True,
                             text=True, timeout=20, check=False)
        return out.stdout + out.stderr

    def jobs(self) -> list[str]:
        """The ids of the jobs in the queue (pending or running)."""
        out = subprocess.run([_binary("squeue"), "-h", "-o", "%i"], env=self.env,
                             capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.split()

    def stop(self) -> None:
        """End the daemons (slurmd first), then SIGKILL whatever jobs' processes remain."""
        with contextlib.suppress(Exception):
            for job in self.jobs():
                subprocess.run([_binary("scancel"), job], env=self.env, timeout=10,
                               check=False)
        for pid_file in reversed(self.pids):
            pid = _read_pid(pid_file)
            if pid is None:
                continue
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.time() + 5
            while _alive(pid) and time.time() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.pids.clear()


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """The cluster for the whole session, `SLURM_CONF` set for this process and its children.
    Without sbatch it skips; with the packages there, a cluster that cannot start fails."""
    lacking = missing()
    if "sbatch" in lacking:
        pytest.skip("slurm-wlm is not installed (`make slurm` installs it)")
    if lacking:
        pytest.fail(f"slurm-wlm/munge installed only in part: {', '.join(lacking)} missing")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        cluster.stop()
        pytest.fail(f"cannot start the test Slurm: {exc}")
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
        cluster.stop()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True
