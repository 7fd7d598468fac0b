"""The preload server's side: its own process, started by run/preload.py's
`Server`, imports the heavy modules once, then forks one child per experiment request. The
child becomes the experiment (its session, environment, cwd, log, argv), runs the script as
`__main__` and exits with its code; the runner never imports this module's heavy modules.

The protocol over the SOCK_SEQPACKET socket: the server says `{"ready": ..., "cuda_initialized":
...}` (or `{"error": ...}`) once; a request is a JSON `{argv, cwd, env}` with the log and status
fds passed by SCM_RIGHTS; the reply is `{"started": pid}`; each child's end is told as
`{"exit": pid, "code": n}`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import socket
import sys
import threading
from typing import Any

MAX_MESSAGE = 1 << 20


def serve() -> None:
    sock_fd, life_fd, *modules = sys.argv[1:]
    base_path = [p for p in sys.path[2:]]  # after `-c`'s '' and the package path
    sock = socket.socket(fileno=int(sock_fd))
    for name in modules:
        try:
            __import__(name)
            if name == "matplotlib" or name.startswith("matplotlib."):
                sys.modules["matplotlib"].use("Agg")
        except BaseException as exc:  # noqa: BLE001 - told to the runner, which falls back
            sock.send(json.dumps({"error": f"import {name}: {type(exc).__name__}: {exc}"})
                      .encode())
            os._exit(1)
    torch = sys.modules.get("torch")
    cuda = bool(torch is not None and torch.cuda.is_initialized())
    sock.send(json.dumps({"ready": True, "cuda_initialized": cuda}).encode())
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner's Ctrl-C is the runner's
    while True:
        ready = select.select([sock, wake_r], [], [])[0]
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
            _reap(sock)
        if sock not in ready:
            continue
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 2)
        except OSError:
            data, fds = b"", []
        if not data:
            os._exit(0)  # the runner ended (or died): nothing left to serve
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            _child(request, fds, int(life_fd), base_path, (sock.fileno(), wake_r, wake_w))
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"started": pid}).encode())


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock.send(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}).encode())


def _child(request: dict[str, Any], fds: list[int], life_fd: int, base_path: list[str],
           server_fds: tuple[int, ...]) -> None:
    """In the forked child: become the experiment, run it, exit with its code. Never returns."""
    code = 126
    status_fd = fds[1] if len(fds) > 1 else -1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in server_fds:
            os.close(fd)
        os.dup2(fds[0], 1)
        os.dup2(fds[0], 2)
        os.close(fds[0])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _threads()
        threading.Thread(target=_lifeline, args=(life_fd,), daemon=True).start()
        argv = request["argv"]
        script = argv[1]
        sys.argv = list(argv[1:])
        sys.path[:] = [os.path.dirname(os.path.abspath(script)), *base_path]
        code = _run_main(script, argv[0])
    except BaseException:  # noqa: BLE001 - a broken start is this experiment's failure alone
        with contextlib.suppress(BaseException):
            import traceback
            traceback.print_exc()
        code = 126
    finally:
        with contextlib.suppress(BaseException):
            if status_fd >= 0:
                os.write(status_fd, f"{code}\n".encode())
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code & 0xFF if code >= 0 else 1)


def _threads() -> None:
    """OpenMP read OMP_NUM_THREADS when torch was imported (in the server): apply the child's."""
    torch = sys.modules.get("torch")
    value = os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS")
    if torch is not None and value:
        with contextlib.suppress(ValueError, RuntimeError):
            torch.set_num_threads(max(1, int(value)))


def _lifeline(fd: int) -> None:
    """Blocks until the runner is gone (the pipe's only write end closes), then ends the group."""
    with contextlib.suppress(OSError):
        while os.read(fd, 1):
            pass
    os.killpg(os.getpid(), signal.SIGKILL)


def _run_main(script: str, executable: str) -> int:
    """Run `script` as __main__ and turn its end into an exit code as `python script` does."""
    import runpy

    if not os.path.exists(script):
        print(f"{executable}: can't open file {os.path.abspath(script)!r}: [Errno 2] No such "
              "file or directory", file=sys.stderr)
        return 2
    interrupted = False
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        _print_exception()
        code, interrupted = 1, True
    except BaseException:  # noqa: BLE001 - printed as the interpreter prints it
        _print_exception()
        code = 1
    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined] - non-daemon threads, as at exit
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    if interrupted:  # python dies of SIGINT after a KeyboardInterrupt: so does the child
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _exit_code(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    with contextlib.suppress(BaseException):
        print(value, file=sys.stderr)
    return 1


def _print_exception() -> None:
    """The traceback without runpy's and this module's frames, as `python script` shows it."""
    etype, value, tb = sys.exc_info()
    skip = (__file__, os.path.abspath(__file__), "<frozen runpy>",
            getattr(sys.modules.get("runpy"), "__file__", ""))
    while tb is not None and tb.tb_frame.f_code.co_filename in skip:
        tb = tb.tb_next
    if value is not None:
        value = value.with_traceback(tb)
    sys.excepthook(etype, value, tb)  # type: ignore[arg-type]
