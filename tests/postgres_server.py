"""A throwaway PostgreSQL 15 cluster for tests: initdb in a temp folder, listening on 127.0.0.1
only (a free port), owned by the `postgres` system user when the tests run as root (initdb
refuses root). Skips with the reason when the binaries are absent."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    """Debian's versioned folder first (/usr/local/bin may hold only a wrapper)."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "pg_ctl").is_file() and (candidate / "initdb").is_file():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found and (Path(found).parent / "pg_ctl").is_file() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """`postgresql://...` of a fresh cluster with a database `hpsys`, stopped afterwards."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    pytest.importorskip("psycopg", reason="psycopg is not installed (the dev extra has it)")
    root = os.geteuid() == 0
    if root:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to own the cluster")
    base = Path(tempfile.mkdtemp(prefix="hpsys-pg-"))
    data = base / "data"
    if root:
        shutil.chown(base, user="postgres")

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = ["runuser", "-u", "postgres", "--", *args] if root else list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True,
                              cwd=base)

    port = _free_port()
    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "hpsys", "--no-sync")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-o",
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} "
        "-c fsync=off", "start")
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            ready = subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p",
                                    str(port)], capture_output=True)
            if ready.returncode == 0:
                break
            time.sleep(0.2)
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "hpsys", "hpsys")
        yield f"postgresql://hpsys@127.0.0.1:{port}/hpsys"
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)
