"""Start Python training scripts from a preloaded interpreter (torch and timm imported once).

One server process per runner imports the heavy modules once (`execution.preload`: torch, timm,
...), then forks a fresh child per experiment: its own session and process group, the
experiment's environment, cwd and train.log, `sys.argv` as `python script.py ...` would give it,
the script run as `__main__`, its exit code. The runner never imports those modules itself; it
talks to the server over a SOCK_SEQPACKET socket (log and status fds passed with SCM_RIGHTS).

What holds for a plain subprocess holds here:
- `Child` has Popen's pid, poll(), wait(timeout) and returncode, so `process_group.wait` and
  `kill_group` (os.killpg on the child's own group) work unchanged;
- the runner dying (even by SIGKILL) ends the server (its socket reaches EOF) and every child (a
  thread in each blocks on a "lifeline" pipe whose only write end the runner holds; at EOF the
  child SIGKILLs its own group); what left the group is the reaper's, as for subprocesses;
- a server crash fails only the experiment it was starting (its running children go on; their
  exit code then comes from a status pipe each child writes at exit) and the next launch starts
  a new server;
- nothing imports CUDA state before the fork (the server reports `torch.cuda.is_initialized()`).

Variables read when a module is imported (not when it is used) are the runner's environment in
a forked child: the launch's own variables (CUDA_VISIBLE_DEVICES, WANDB_*, HPSYS_*) are read
later by torch and wandb; OMP/MKL thread counts are applied with torch.set_num_threads.
Ray tasks start plain subprocesses.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from hyperparameter_system.core.processes import alive
from hyperparameter_system.run.forkserver import MAX_MESSAGE

READY_TIMEOUT_S = 300.0  # importing torch + timm on a cold disk can take a while
_UNREPORTED = -signal.SIGKILL  # a child that died with its server and said nothing
ENGINE = "codes/train.py"  # the built-in trainer, relative to the project root (the launch cwd)


def python_script(argv: Sequence[str]) -> str | None:
    """The script of `argv` when it is `<this interpreter> path.py ...`, else None."""
    if len(argv) < 2 or not argv[1].endswith(".py") or argv[1].startswith("-"):
        return None
    if argv[0] != sys.executable and os.path.realpath(argv[0]) != os.path.realpath(
            sys.executable):
        return None
    return argv[1]


def forks(argv: Sequence[str], cwd: str, every_script: bool) -> bool:
    """Whether a launch starts from the server: a `python X.py` script, and (unless
    `every_script`, preload true or a list) the built-in trainer, `<project>/codes/train.py`,
    whose imports the server's DEFAULT_PRELOAD are."""
    script = python_script(argv)
    if script is None:
        return False
    return every_script or Path(cwd, script).resolve() == Path(cwd, ENGINE).resolve()


class Child:
    """A forked experiment, as the launcher sees a Popen."""

    def __init__(self, pid: int, status_fd: int) -> None:
        self.pid = pid
        self.args = (str(pid),)
        self.returncode: int | None = None
        self._status_fd = status_fd
        self._done = threading.Event()
        self._orphan = False  # its server died: the exit code comes from the status pipe

    def _exited(self, code: int) -> None:
        if not self._done.is_set():
            self.returncode = code
            self._done.set()
            with contextlib.suppress(OSError):
                os.close(self._status_fd)

    def _from_status_pipe(self) -> None:
        if alive(self.pid):
            return
        try:
            ready = select.select([self._status_fd], [], [], 0)[0]
            data = os.read(self._status_fd, 64) if ready else b""
        except OSError:
            data = b""
        try:
            code = int(data.decode().strip())
        except ValueError:
            code = _UNREPORTED
        self._exited(code)

    def poll(self) -> int | None:
        if not self._done.wait(0.002) and self._orphan:
            self._from_status_pipe()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self._done.wait(0.05 if left is None else min(0.05, left))
        assert self.returncode is not None
        return self.returncode


class Server:
    """The runner's handle on its preload server: started on the first launch, restarted after
    a crash, disabled (plain subprocesses) when a module fails to import."""

    def __init__(self, modules: Sequence[str], cwd: str | None = None) -> None:
        self.modules = tuple(modules)
        self.cwd = cwd
        self.disabled = not self.modules
        self.cuda_initialized: bool | None = None  # as the server reported it
        self.starts = 0
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._lifeline: tuple[int, int] | None = None
        self._children: dict[int, Child] = {}
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._pending_status: int | None = None

    # -- the runner's side ---------------------------------------------------------------
    def start(self, argv: Sequence[str], cwd: str, env: Mapping[str, str],
              log: IO[bytes]) -> Child | None:
        """Fork `argv` from the server, or None when it should run as a plain subprocess.
        Raises OSError when the server died while starting it (that experiment fails)."""
        if self.disabled or python_script(argv) is None:
            return None
        with self._lock:
            if self._proc is not None and self._proc.poll() is not None:
                self._lost()  # it crashed between launches: start another
            if self._sock is None and not self._boot():
                return None
            assert self._sock is not None
            status_r, status_w = os.pipe()
            self._pending_status = status_r
            request = json.dumps({"argv": list(argv), "cwd": cwd, "env": dict(env)}).encode()
            try:
                socket.send_fds(self._sock, [request], [log.fileno(), status_w])
                reply = self._replies.get(timeout=60)
            except (OSError, queue.Empty) as exc:
                reply = {"error": str(exc)}
            finally:
                os.close(status_w)
                self._pending_status = None
            if reply is None or "started" not in reply:
                os.close(status_r)
                why = "it died" if reply is None else reply.get("error", "no answer")
                self._lost()
                raise OSError(f"the preload server could not start it ({why})")
            return self._children[reply["started"]]

    def shutdown(self) -> None:
        """End the server (its running children, if any, are ended through the lifeline)."""
        with self._lock:
            self._lost()
            if self._lifeline is not None:
                for fd in self._lifeline:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                self._lifeline = None

    def _boot(self) -> bool:
        if self._lifeline is None:
            self._lifeline = os.pipe()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package = str(Path(__file__).resolve().parents[2])
        code = (f"import sys; sys.path.insert(0, {package!r}); "
                "from hyperparameter_system.run.forkserver import serve; serve()")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-u", "-c", code, str(theirs.fileno()),
                 str(self._lifeline[0]), *self.modules],
                pass_fds=(theirs.fileno(), self._lifeline[0]), cwd=self.cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
        except OSError as exc:
            ours.close()
            theirs.close()
            return self._give_up(f"cannot start the preload server: {exc}")
        theirs.close()
        ours.settimeout(READY_TIMEOUT_S)
        try:
            hello = json.loads(ours.recv(MAX_MESSAGE) or b"null")
        except (OSError, ValueError):
            hello = None
        ours.settimeout(None)
        if not isinstance(hello, dict) or "ready" not in hello:
            ours.close()
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
            why = hello.get("error") if isinstance(hello, dict) else "it exited during imports"
            return self._give_up(f"preload failed ({why})")
        self.cuda_initialized = bool(hello.get("cuda_initialized"))
        self._proc, self._sock = proc, ours
        self.starts += 1
        self._replies = queue.Queue()
        threading.Thread(target=self._read, args=(ours, self._replies), daemon=True,
                         name="preload-reader").start()
        return True

    def _give_up(self, why: str) -> bool:
        self.disabled = True
        warnings.warn(f"{why}; experiments start as plain subprocesses", RuntimeWarning,
                      stacklevel=3)
        return False

    def _read(self, sock: socket.socket, replies: queue.Queue) -> None:
        while True:
            try:
                data = sock.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            if "exit" in message:
                child = self._children.pop(message["exit"], None)
                if child is not None:
                    child._exited(int(message["code"]))
            elif "started" in message:
                status = self._pending_status
                assert status is not None
                self._children[message["started"]] = Child(message["started"], status)
                replies.put(message)
            else:
                replies.put(message)
        replies.put(None)  # a request waiting for its answer: the server died
        for child in list(self._children.values()):
            child._orphan = True

    def _lost(self) -> None:
        """Forget the server (it died or is shut down); the next launch starts another."""
        sock, proc = self._sock, self._proc
        self._sock = self._proc = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for child in list(self._children.values()):
            child._orphan = True
        self._children = {k: c for k, c in self._children.items() if not c._orphan}


_SERVERS: dict[tuple[str, ...], Server] = {}
_SERVERS_LOCK = threading.Lock()


def server(modules: Sequence[str], cwd: str | None = None) -> Server:
    """This process's server for `modules`: one serves every slot and every run of the process
    (forks are cheap); it ends with the process (atexit, or its socket's EOF if killed)."""
    with _SERVERS_LOCK:
        made = _SERVERS.get(tuple(modules))
        if made is None:
            made = _SERVERS[tuple(modules)] = Server(modules, cwd)
            if len(_SERVERS) == 1:
                atexit.register(shutdown_all)
        return made


def shutdown_all() -> None:
    with _SERVERS_LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
    for made in servers:
        made.shutdown()
