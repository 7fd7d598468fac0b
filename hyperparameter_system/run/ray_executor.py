"""Run experiments as Ray tasks: the same launcher, on whichever node Ray picks.

The executor's slots become in-flight Ray tasks. Each task asks for the experiment's CPUs, GPUs
and custom resources, runs `launcher.execute` on its node (Ray sets CUDA_VISIBLE_DEVICES there),
and streams back two items: where it started (node, pid) and then the `Outcome` with its log
tail. Only the driver writes the ledger. Ray is imported here alone, so the CLI starts fast and
Ray stays an optional extra (`pip install .[ray]`).

Code and data reach the nodes either through a filesystem mounted at the same path on every node
(the default: the task runs in the driver's project root), or through Ray's runtime environment
(`execution.ray_runtime_env: {working_dir: ., excludes: [runs, temp_configs]}`), in which case
paths under the driver's project root are moved under the task's own working directory.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import math
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from hyperparameter_system.config.settings import ExecutionSettings, Settings
from hyperparameter_system.core.errors import HpsysError
from hyperparameter_system.run import devices, launcher, reaper, signals
from hyperparameter_system.run.devices import Slot
from hyperparameter_system.run.launcher import Launch
from hyperparameter_system.run.process_group import KILL_GRACE_S
from hyperparameter_system.run.seams import Dispatch, OnStart
from hyperparameter_system.store.outcomes import Outcome

LOOPBACK = "127.0.0.1"
POLL_S = 0.2
REAP_TIMEOUT_S = KILL_GRACE_S + 10.0
LEFTOVER_WAIT_S = 5.0
# Ray's driver-side lines (INFO "Started a local Ray instance", the token-auth WARNING) are not
# the run's: only its errors reach the console, where the live view draws
RAY_LOG_LEVEL = logging.ERROR
# set when this process started the local Ray it runs on: its nodes are this host
_local: dict[str, bool] = {}


def connect(settings: Settings) -> None:
    """Join the configured cluster, or start a local Ray bound to loopback, once per process."""
    execution = settings.execution
    address = execution.ray_address or None
    if address and address.startswith("ray://"):
        # Ray Client cannot stream a task's items (start, then outcome)
        raise HpsysError(f"{settings.path}: execution.ray_address",
                         "Ray Client addresses (ray://) are not supported: run the runner on a "
                         "node of the cluster with ray_address: auto (or <head-ip>:6379), or "
                         "submit it with `ray job submit`")
    if address is None:
        # a Ray started on the spot binds to 127.0.0.1 only: Ray reads this at import, its
        # processes inherit it; without it they listen on every interface despite the node IP
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        return
    if address is None:  # Ray was imported before the variable was set
        ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               **_quiet_ray()}
    if address is None:
        options["_node_ip_address"] = LOOPBACK
    if execution.ray_runtime_env:  # a local working_dir is uploaded at the job level only
        options["runtime_env"] = dict(execution.ray_runtime_env)
    # ray.init takes SIGTERM over (a handler that exits mid-run, a C-level one that aborts):
    # ours come back after it. A Ray started here spawns its processes with SIGHUP blocked, as
    # Ray blocks SIGINT, and SIGTERM too: a closed terminal's SIGHUP, or a scheduler's SIGTERM,
    # sent to the whole process group reaches the runner alone, which cancels the tasks and then
    # shuts that Ray down itself (without it, GCS and raylet die first and the cancels hang).
    spared = (signals.children_spared(signals.MAPPED_SIGNALS) if address is None
              else contextlib.nullcontext())
    try:  # "local": a fresh Ray, never whatever cluster /tmp/ray/ray_current_cluster names
        with spared, signals.handlers_kept():
            ray.init(address=address or "local", **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise HpsysError(f"{settings.path}: execution.ray_address",
                         f"cannot connect to Ray at {address!r}: {exc}") from None
    if address is None:
        _local["started"] = True
        # after Ray's own exit hooks, so it runs first: nothing of this Ray outlives the runner
        atexit.register(shutdown_local)


def _quiet_ray() -> dict[str, Any]:
    """ray.init's `logging_level` for the driver's "ray" logger, also set before the call
    for what logs first; none when the user chose one with Ray's RAY_LOGGER_LEVEL."""
    if "RAY_LOGGER_LEVEL" in os.environ:
        return {}
    logging.getLogger("ray").setLevel(RAY_LOG_LEVEL)
    return {"logging_level": RAY_LOG_LEVEL}


def shutdown_local() -> None:
    """Shut down the local Ray this process started, then SIGKILL whatever of it is left
    (agents and workers that outlive their raylet or ignore SIGTERM). Stop signals wait
    meanwhile: a second one must not leave half a Ray behind."""
    if not _local.pop("started", False):
        return
    import ray

    with signals.signals_held():
        node = ray._private.worker._global_node
        roots = [info.process.pid for infos in (node.all_processes.values() if node else ())
                 for info in infos]
        tree = _process_tree(roots)
        if node is not None:  # they ignore SIGTERM (blocked above): no second lost per process
            kill_all = node.kill_all_processes
            node.kill_all_processes = lambda **kw: kill_all(**{**kw, "allow_graceful": False})
        with contextlib.suppress(Exception):
            ray.shutdown()
        _kill_left(tree)


def _process_tree(roots: list[int]) -> dict[int, str]:
    """These processes and all their descendants, as {pid: start time} (a pid reused later
    by another process has another start time)."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat:
            children.setdefault(int(stat[1]), []).append(pid)
    found: dict[int, str] = {}
    todo = list(roots)
    while todo:
        pid = todo.pop()
        stat = _stat(pid)
        if pid in found or not stat:
            continue
        found[pid] = stat[19]
        todo.extend(children.get(pid, ()))
    return found


def _kill_left(tree: Mapping[int, str]) -> None:
    def alive() -> list[int]:
        return [pid for pid, start in tree.items()
                if (stat := _stat(pid)) and stat[19] == start and stat[0] not in "ZX"]

    deadline = time.time() + LEFTOVER_WAIT_S
    for pid in alive():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    while alive() and time.time() < deadline:
        time.sleep(0.05)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, ... (start time at 19)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def request(execution: ExecutionSettings, cluster_gpus: float,
            where: str = "execution") -> dict[str, Any]:
    """The Ray resources one experiment asks for.

    GPUs: `gpus_per_experiment / experiments_per_gpu` each, unless `gpus` is none, or `auto` on
    a cluster without GPUs. `ray_resources` adds custom resources (they may stand in for GPUs).
    Ray shares a single GPU only (fractions below 1), so several GPUs per experiment cannot be
    shared: refused here, before a task asking for 1.5 GPUs fails at submission.
    """
    wants_gpus = execution.gpus != () and (execution.gpus != "auto" or cluster_gpus > 0)
    if wants_gpus and execution.gpus_per_experiment > 1 and execution.experiments_per_gpu > 1:
        raise HpsysError(f"{where}.experiments_per_gpu",
                         "Ray shares only single GPUs between tasks: with gpus_per_experiment "
                         f"{execution.gpus_per_experiment}, set experiments_per_gpu to 1 "
                         "(or use the local executor)")
    gpus = execution.gpus_per_experiment / execution.experiments_per_gpu if wants_gpus else 0
    return {"num_cpus": execution.cpus_per_experiment, "num_gpus": gpus,
            "resources": dict(execution.ray_resources)}


def capacity(nodes: list[Mapping[str, Any]], ask: Mapping[str, Any]) -> int:
    """How many experiments asking for `ask` fit on these alive nodes at once."""
    need = {"CPU": ask["num_cpus"], "GPU": ask["num_gpus"], **ask["resources"]}
    need = {k: v for k, v in need.items() if v > 0}
    total = 0
    for node in nodes:
        have = node.get("Resources", {})
        if not need:
            total += 1
            continue
        total += min(math.floor(have.get(k, 0) / v + 1e-9) for k, v in need.items())
    return total


def ray_slots(settings: Settings) -> list[Slot]:
    """One slot per Ray task kept in flight: `max_parallel`, or when that is 1, as many as the
    cluster can run at once. No CUDA_VISIBLE_DEVICES here: Ray sets it for each task."""
    connect(settings)
    import ray

    execution = settings.execution
    ask = request(execution, ray.cluster_resources().get("GPU", 0), f"{settings.path}: execution")
    count = execution.max_parallel
    if count == 1:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        count = capacity(nodes, ask)
        if count == 0:
            raise HpsysError(f"{settings.path}: execution",
                             f"no Ray node can run an experiment asking for {_describe(ask)}")
    threads = max(1, int(execution.cpus_per_experiment))
    return [Slot(f"ray{i}", (), devices.thread_env(threads)) for i in range(count)]


def ray_dispatch(settings: Settings) -> Dispatch:
    """Run one launch as a Ray task; `stop()` cancels it and ends its processes on its node."""
    connect(settings)
    import ray

    ask = request(settings.execution, ray.cluster_resources().get("GPU", 0),
                  f"{settings.path}: execution")
    remote = ray.remote(max_retries=0)(run_on_node).options(**ask)
    keep = settings.system.keep_temp_configs
    here = socket.gethostname()

    def dispatch(launch: Launch, slot: Slot, stop: Callable[[], bool],
                 on_start: OnStart) -> Outcome:
        started = time.time()
        stream = remote.remote(launch, keep)
        where: dict[str, Any] = {}
        while True:
            if stop():
                return _cancel(stream, launch, where, started)
            ready, _ = ray.wait([stream], timeout=POLL_S)
            if not ready:
                continue
            try:
                item = ray.get(next(stream))
            except StopIteration:
                return _lost(launch, started, where, "the Ray task ended without an outcome")
            except ray.exceptions.RayError as exc:
                return _lost(launch, started, where, f"the Ray task failed: {exc}")
            if isinstance(item, Outcome):
                return item
            where.update(item)
            try:  # a pid means something only on this host: the ledger reaps by it after a crash
                on_start(item["pid"] if item["host"] == here else 0, item["node"])
            except BaseException:  # not recorded (a full ledger): it must not run on untracked
                _cancel(stream, launch, where, started)
                raise

    return dispatch


def run_on_node(launch: Launch, keep_config: bool) -> Iterator[dict[str, Any] | Outcome]:
    """The Ray task: yield {node, host, pid} once the script runs, then its Outcome."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    launch = localise(launch)
    pids: queue.Queue[int | None] = queue.Queue()
    stop = threading.Event()
    box: dict[str, Outcome] = {}

    def work() -> None:
        # a local Ray's processes got SIGTERM and SIGHUP blocked (connect): the script must not
        # inherit that, or the launcher's SIGTERM would wait out its grace for nothing
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.MAPPED_SIGNALS)
        try:
            box["outcome"] = launcher.execute(launch, stop=stop.is_set, on_start=pids.put,
                                              keep_config=keep_config)
        finally:
            pids.put(None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        pid = _poll(pids.get)
        if pid is not None:
            yield {"node": node, "host": socket.gethostname(), "pid": pid}
        while thread.is_alive():  # polled: a cancel's KeyboardInterrupt lands between polls
            thread.join(POLL_S)
    except KeyboardInterrupt:
        stop.set()
        thread.join()
        raise
    outcome = box.get("outcome") or Outcome(launch.experiment_id, "failed", time.time(),
                                            time.time(), error="the launcher raised")
    outcome.extra["host"], outcome.node = outcome.node, node
    gpu_ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    gpus = [str(g) for g in gpu_ids]
    # before Ray hands these GPUs to the next task; the driver warns when they stay held
    if gpus and not devices.wait_released(gpus, launch.experiment_id):
        outcome.extra["gpus_not_released"] = gpus
    yield outcome


def _poll(get: Callable[..., Any]) -> Any:
    while True:
        with contextlib.suppress(queue.Empty):
            return get(timeout=POLL_S)


def localise(launch: Launch) -> Launch:
    """On a node without the driver's project root (code shipped by runtime_env working_dir),
    move paths under that root to this task's working directory, and use this node's Python."""
    argv = list(launch.argv)
    if not os.path.exists(argv[0]) and os.path.basename(argv[0]).startswith("python"):
        argv[0] = sys.executable
    if os.path.isdir(launch.cwd):
        return dataclasses.replace(launch, argv=tuple(argv))
    old, new = launch.cwd.rstrip("/"), os.getcwd()

    def move(value: str) -> str:
        return new + value[len(old):] if value == old or value.startswith(old + "/") else value

    return dataclasses.replace(
        launch, argv=tuple(move(a) for a in argv), cwd=new,
        env={k: move(v) for k, v in launch.env.items()},
        config_path=move(launch.config_path), run_dir=move(launch.run_dir))


def reap_on_node(experiment_id: str, log_path: str, grace: float,
                 ledger: str | None = None) -> tuple[int, str]:
    """After a cancel: give the task `grace` seconds to end its process group itself, then
    SIGKILL what is left of the experiment. Returns (processes left, log tail)."""
    deadline = time.time() + grace
    while reaper.experiment_pids(experiment_id, ledger) and time.time() < deadline:
        time.sleep(0.1)
    left = reaper.reap(experiment_id, ledger=ledger)
    return left, launcher.tail(log_path)


def _cancel(stream, launch: Launch, where: Mapping[str, Any], started: float) -> Outcome:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    with contextlib.suppress(Exception):
        ray.cancel(stream, force=False)
    outcome = _lost(launch, started, where, "interrupted by the user")
    outcome.status = "interrupted"
    node = where.get("node")
    if node:
        reap = ray.remote(reap_on_node).options(
            num_cpus=0, max_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
        with contextlib.suppress(Exception):
            left, outcome.log_tail = ray.get(
                reap.remote(launch.experiment_id, launch.log_path, KILL_GRACE_S + 2,
                            launch.env.get("HPSYS_LEDGER")),
                timeout=REAP_TIMEOUT_S)
            if left:
                outcome.error += f" ({left} process(es) could not be ended on node {node})"
    else:  # not seen starting: let a task that did start end its process group itself
        with contextlib.suppress(Exception):
            ray.wait([stream], timeout=KILL_GRACE_S + 2)
    with contextlib.suppress(Exception):
        ray.cancel(stream, force=True)
    return outcome


def _lost(launch: Launch, started: float, where: Mapping[str, Any], error: str) -> Outcome:
    return Outcome(launch.experiment_id, "failed", started, time.time(), error=error,
                   config_path=launch.config_path, run_dir=launch.run_dir,
                   log_path=launch.log_path, node=where.get("node"),
                   extra={"host": where.get("host")} if where.get("host") else {})


def _describe(ask: Mapping[str, Any]) -> str:
    parts = [f"{ask['num_cpus']:g} CPU", f"{ask['num_gpus']:g} GPU",
             *(f"{v:g} {k}" for k, v in ask["resources"].items())]
    return ", ".join(parts)
