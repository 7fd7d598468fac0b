"""The Ray executor on a local two-node cluster (custom `fake_gpu` resources stand in for GPUs),
kept on loopback: every experiment done once, spread over both nodes, recorded by the driver; a
failure stays alone; resume skips what is done; a stop cancels the task and ends its processes.
One cluster serves the whole module (Ray starts slowly)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

# read by Ray when imported: nodes of a cluster started here then bind to 127.0.0.1 only
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")

from parallel_support import ROOT, events, fake_settings  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from hyperparameter_system.app import api  # noqa: E402
from hyperparameter_system.core.errors import HpsysError  # noqa: E402
from hyperparameter_system.run import launcher, reaper  # noqa: E402
from hyperparameter_system.run.ray_executor import (  # noqa: E402
    capacity,
    connect,
    localise,
    ray_dispatch,
    ray_slots,
    request,
)

NODE = {"num_cpus": 2, "resources": {"fake_gpu": 2}, "node_ip_address": "127.0.0.1",
        "include_dashboard": False}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RAY = {"executor": "ray", "gpus": "none", "ray_resources": {"fake_gpu": 1},
       "heartbeat_s": 0.5, "stale_after_s": 10}


def test_request_and_capacity(tmp_path):
    execution = fake_settings(tmp_path, [{"fake.sleep": 0}], {**RAY, "gpus": "auto",
                                                              "experiments_per_gpu": 2}).execution
    assert request(execution, cluster_gpus=0)["num_gpus"] == 0  # auto on a CPU-only cluster
    ask = request(execution, cluster_gpus=8)
    assert ask == {"num_cpus": 1.0, "num_gpus": 0.5, "resources": {"fake_gpu": 1.0}}
    nodes = [{"Resources": {"CPU": 16, "GPU": 2, "fake_gpu": 3}},
             {"Resources": {"CPU": 2, "GPU": 4, "fake_gpu": 8}}, {"Resources": {"CPU": 64}}]
    assert capacity(nodes, ask) == 3 + 2  # fake_gpu bounds the first node, CPU the second


def test_several_gpus_per_experiment_cannot_be_shared_on_ray(tmp_path):
    """Ray splits only single GPUs (1.5 GPUs fails at submission): refused up front."""
    shared = {**RAY, "gpus": [0, 1, 2, 3], "gpus_per_experiment": 3, "experiments_per_gpu": 2}
    execution = fake_settings(tmp_path, [{"fake.sleep": 0}], shared).execution
    with pytest.raises(HpsysError, match="experiments_per_gpu.*Ray shares only single GPUs"):
        request(execution, cluster_gpus=4)
    assert request(dataclasses.replace(execution, experiments_per_gpu=1), 4)["num_gpus"] == 3
    assert request(dataclasses.replace(execution, gpus=()), 4)["num_gpus"] == 0


def test_localise_moves_paths_under_the_task_working_dir(tmp_path, monkeypatch):
    settings = fake_settings(tmp_path, [{"fake.sleep": 0}], RAY)
    launch = launcher.plan(api.select(settings)[0], settings, 1)
    moved = dataclasses.replace(launch, cwd="/nowhere/repo",
                                argv=("/nowhere/bin/python3", "/nowhere/repo/tests/x.py"),
                                env={**launch.env, "HPSYS_RUN_DIR": "/nowhere/repo/runs/a"},
                                run_dir="/nowhere/repo/runs/a")
    monkeypatch.chdir(tmp_path)
    here = localise(moved)
    assert here.cwd == str(tmp_path) and here.run_dir == f"{tmp_path}/runs/a"
    assert here.argv == (sys.executable, f"{tmp_path}/tests/x.py")
    assert here.env["HPSYS_RUN_DIR"] == f"{tmp_path}/runs/a"
    assert localise(launch) == launch  # a shared filesystem: nothing moves


def test_ray_client_addresses_are_refused(tmp_path):
    settings = fake_settings(tmp_path, [{"fake.sleep": 0}], {**RAY, "ray_address": "ray://h:1"})
    with pytest.raises(HpsysError, match="not supported"):
        connect(settings)


def test_bad_ray_resources_are_refused(tmp_path):
    with pytest.raises(HpsysError, match="resource 'fake_gpu'"):
        fake_settings(tmp_path, [{"fake.sleep": 0}], {**RAY, "ray_resources": {"fake_gpu": -1}})


@pytest.fixture(scope="module")
def local_cli_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`--executor ray` with no address, run once for the module: the runner starts Ray on the
    spot and keeps it on 127.0.0.1. Its own Ray temp folder hides the module's cluster (Ray would
    join the last cluster started on this machine, which `ray_current_cluster` there names), so
    the tests do not depend on running before it, nor on other Ray sessions of the machine.
    What every Ray process listened on is checked while it runs; its stdout and stderr kept."""
    tmp_path = tmp_path_factory.mktemp("local-ray")
    options = [{"fake.sleep": 3.0, "fake.metric": round(0.1 * (i + 1), 2)} for i in range(2)]
    settings = fake_settings(tmp_path, options, {"max_parallel": 2, "gpus": "none"})
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS", "TMPDIR",
                        "RAY_LOGGER_LEVEL")}
    ray_tmp = tempfile.mkdtemp(prefix="hpray")  # short: Ray's unix sockets live under it
    proc = subprocess.Popen([sys.executable, "-m", "hyperparameter_system.experiment_runner",
                             "--config", str(settings.path), "--all", "--executor", "ray"],
                            cwd=ROOT, env={**env, "FAKE_EVENTS": str(tmp_path / "ev.jsonl"),
                                           "RAY_TMPDIR": ray_tmp},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listening: list[tuple[str, str]] = []
    try:
        while proc.poll() is None:
            listening += [(local, _command(pid))
                          for local, pid in _listening(_descendants(proc.pid))]
            time.sleep(0.5)
    finally:
        if proc.poll() is None:  # a failed check: Ctrl-C the runner, which shuts its Ray down
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return {"code": proc.returncode, "out": proc.stdout.read(), "err": proc.stderr.read(),
            "listening": listening, "events": events(tmp_path / "ev.jsonl")}


def test_cli_starts_a_local_ray_on_loopback(local_cli_run):
    run = local_cli_run
    assert run["code"] == 0, (run["out"], run["err"])
    assert "2 done" in run["out"]
    assert run["listening"]
    for local, command in run["listening"]:
        assert _loopback(local), f"a Ray process listens on {local}: {command}"
    assert len(run["events"]) == 2


# Ray's log line format: `<date> <time>,<ms>\t<LEVEL> <file>.py:<line> -- <message>`
RAY_LOG_LINE = re.compile(r"\b(INFO|WARNING|DEBUG)\b\s+\S+\.py:\d+ -- ")


def test_a_local_ray_run_prints_none_of_rays_info_or_warning_lines(local_cli_run):
    """Item 19: "Started a local Ray instance", the token-auth warning and the like are Ray's
    business, not the run's: neither stream shows one (log_to_driver off, the driver's "ray"
    logger at ERROR)."""
    run = local_cli_run
    assert run["code"] == 0, (run["out"], run["err"])
    for stream in ("out", "err"):
        found = [line for line in run[stream].splitlines() if RAY_LOG_LINE.search(line)]
        assert not found, f"Ray's log lines on std{stream}: {found}"
        assert "Started a local Ray instance" not in run[stream]
        assert "authentication" not in run[stream].lower()
    assert run["err"].strip() == "", run["err"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # in case Ray was imported earlier
    events_path = tmp_path_factory.mktemp("ray-events") / "events.jsonl"
    saved = {k: os.environ.get(k) for k in ("FAKE_EVENTS", "HF_HUB_OFFLINE", "WANDB_MODE")}
    # inherited by the nodes' workers, so set before they start
    os.environ.update(FAKE_EVENTS=str(events_path), HF_HUB_OFFLINE="1", WANDB_MODE="disabled")
    two = Cluster(initialize_head=True, head_node_args=NODE)
    two.add_node(**NODE)
    two.wait_for_nodes()
    ray.init(address=two.address)
    try:
        yield two, events_path
    finally:
        ray.shutdown()
        two.shutdown()
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.update({key: value})


@pytest.fixture
def fake_events(cluster) -> Path:
    path = cluster[1]
    path.write_text("")
    return path


def ray_settings(tmp: Path, options, cluster, **execution):
    return fake_settings(tmp, options, {**RAY, "ray_address": cluster[0].address, **execution})


def test_capacity_sets_the_slots(tmp_path, cluster):
    settings = ray_settings(tmp_path, [{"fake.sleep": 0}], cluster)
    slots = ray_slots(settings)
    assert len(slots) == 4  # 2 nodes x min(2 CPU / 1, 2 fake_gpu / 1)
    assert all("CUDA_VISIBLE_DEVICES" not in s.env for s in slots)
    assert len(ray_slots(ray_settings(tmp_path, [{"fake.sleep": 0}], cluster,
                                      cpus_per_experiment=2))) == 2
    assert len(ray_slots(ray_settings(tmp_path, [{"fake.sleep": 0}], cluster,
                                      max_parallel=3))) == 3


def test_matrix_runs_once_each_over_both_nodes_failure_alone_and_resume(tmp_path, cluster,
                                                                        fake_events):
    options = [{"fake.sleep": 1.0, "fake.metric": round(0.1 * (i + 1), 2)} for i in range(6)]
    options.append({"fake.sleep": 0.2, "fake.exit_code": 3})
    settings = ray_settings(tmp_path, options, cluster)
    experiments = api.select(settings)
    result = api.run(settings, experiments)

    assert result.count("done") == 6 and result.count("failed") == 1
    rows = {r.id: r for r in api.open_ledger(settings).rows()}
    bad = next(e for e in experiments if e.option.get("fake.exit_code"))
    assert rows[bad.id].status == "failed" and rows[bad.id].error == "exit code 3"
    assert "failing on purpose" in rows[bad.id].log_tail
    good = [e.id for e in experiments if e.id != bad.id]
    assert all(rows[i].status == "done" and rows[i].metric is not None for i in good)
    assert Counter(r["id"] for r in events(fake_events)) == Counter(good)
    node_ids = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert {rows[i].node for i in good} == node_ids  # spread over both, recorded by the driver

    again = api.run(settings, experiments)
    assert again.skipped_done == 6
    assert [o.experiment_id for o in again.outcomes] == [bad.id]
    assert Counter(r["id"] for r in events(fake_events)) == Counter(good)


def test_runtime_env_ships_the_code_to_a_node_without_it(tmp_path, cluster, fake_events):
    """The project root is gone where the task runs: working_dir brings the scripts."""
    proj, ship = tmp_path / "proj", tmp_path / "ship"
    for root in (proj, ship):
        (root / "tests/fakes").mkdir(parents=True)
        for name in ("fake_train.py", "base.yaml"):
            shutil.copy(ROOT / "tests/fakes" / name, root / "tests/fakes" / name)
    master = {"system": {"project_root": str(proj), "base_config": "tests/fakes/base.yaml",
                         "ledger": str(tmp_path / "l.db"), "runs_dir": "runs",
                         "temp_config_dir": "tc", "baseline": False},
              "models": [{"name": "m1", "script": "python tests/fakes/fake_train.py"}],
              "experiment_categories": {"fake": {"options": [{"fake.metric": 0.7}]}},
              "execution": {**RAY, "ray_address": cluster[0].address,
                            "ray_runtime_env": {"working_dir": str(ship)}}}
    (tmp_path / "master.yaml").write_text(yaml.safe_dump(master))
    settings = api.load(tmp_path / "master.yaml")
    shutil.rmtree(proj)
    ray.shutdown()  # the runtime environment is the job's: the runner joins with its own
    try:
        result = api.run(settings, api.select(settings))
    finally:
        ray.shutdown()
        ray.init(address=cluster[0].address)
    assert result.count("done") == 1, result.outcomes[0].log_tail
    outcome = result.outcomes[0]
    assert outcome.result["metrics"]["best_val_f1"] == 0.7
    assert not proj.exists() and not outcome.run_dir.startswith(str(proj))


def test_stop_cancels_the_task_and_ends_its_processes(tmp_path, cluster, fake_events):
    settings = ray_settings(tmp_path, [{"fake.sleep": 60}], cluster)
    exp = api.select(settings)[0]
    launch = launcher.plan(exp, settings, 1, env=ray_slots(settings)[0].env)
    seen: list[tuple[int, str | None]] = []
    stop_at: list[float] = []

    def on_start(pid: int, node: str | None = None) -> None:
        seen.append((pid, node))
        stop_at.append(time.time() + 1.0)

    def stop() -> bool:
        return bool(stop_at) and time.time() > stop_at[0]

    outcome = ray_dispatch(settings)(launch, None, stop, on_start)
    assert outcome.status == "interrupted"
    assert seen and seen[0][0] > 0 and seen[0][1] in {n["NodeID"] for n in ray.nodes()}
    assert outcome.node == seen[0][1]
    assert time.time() - stop_at[0] < 15
    assert reaper.experiment_pids(exp.id) == []
    assert "fake training" in outcome.log_tail


def test_every_ray_process_listens_on_loopback_only(cluster):
    checked = 0
    for local, pid in _listening(_descendants(os.getpid())):
        checked += 1
        assert _loopback(local), f"a Ray process listens on {local}: {_command(pid)}"
    assert checked >= 4  # gcs, raylets, workers


def test_a_race_decides_over_ray_as_it_does_locally(tmp_path, cluster, fake_events):
    """The race is a source behind the executor's seam: over Ray it runs the same paired seeds,
    each once, and comes to the local race's verdicts."""
    from test_racing import CLEAR_DECIDED, race_clear_pool

    seeds, found = race_clear_pool(tmp_path, {**RAY, "ray_address": cluster[0].address})
    assert seeds == {"big": 2, "worse": 2, "same": 2, "baseline": 2}
    assert found == CLEAR_DECIDED
    ran = Counter(r["id"] for r in events(fake_events))
    assert len(ran) == 8 and set(ran.values()) == {1}


@pytest.mark.slow
def test_real_training_through_ray(tmp_path, cluster):
    master = tmp_path / "master.yaml"
    master.write_text(f"""
system: {{project_root: {ROOT}, base_config: codes/config_v2.yaml, ledger: {tmp_path}/l.db,
         runs_dir: {tmp_path}/runs, temp_config_dir: {tmp_path}/tc, wandb_mode: disabled,
         baseline: false}}
models: [{{name: test_resnet, script: python codes/train.py}}]
experiment_categories: {{lr: {{options: [{{lr: 0.001}}, {{lr: 0.003}}]}}}}
execution: {{executor: ray, ray_address: "{cluster[0].address}", gpus: none,
            ray_resources: {{fake_gpu: 1}}}}
""")
    overrides = ["image_size=32", "batch_size=32", "epochs=1",
                 "limit_samples=160", "cpu_threads=1", "num_workers=0", f"data_dir={ROOT}/data",
                 "pretrained=false"]
    settings = api.load(master, overrides)
    experiments = api.select(settings)
    result = api.run(settings, experiments)
    assert result.count("done") == 2, [o.error or o.log_tail for o in result.outcomes]
    asked = {e.id: e.option["lr"] for e in experiments}
    for outcome in result.outcomes:
        assert outcome.result["effective"]["lr"] == pytest.approx(asked[outcome.experiment_id])
        assert outcome.result["metrics"]["epochs_run"] == 1


def _listening(pids: set[int]) -> list[tuple[tuple[IPAddress, int], int]]:
    """((address, port), pid) of each listening TCP socket held by one of `pids`, read from
    /proc (no `ss`, no psutil): the pids' socket inodes, looked up in /proc/net/tcp and tcp6."""
    owner: dict[str, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone meanwhile
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[target[len("socket:["):-1]] = pid
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:  # no IPv6
            continue
        for line in lines:
            fields = line.split()  # sl local remote state ... uid timeout inode
            if fields[3] != "0A" or fields[9] not in owner:  # 0A: LISTEN
                continue
            host, port = fields[1].split(":")
            # each 32-bit word of the address is printed as a number in host byte order
            raw = b"".join(int(host[i:i + 8], 16).to_bytes(4, sys.byteorder)
                           for i in range(0, len(host), 8))
            found.append(((ipaddress.ip_address(raw), int(port, 16)), owner[fields[9]]))
    return found


def _loopback(local: tuple[IPAddress, int]) -> bool:
    address = local[0]
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"pid {pid} (gone)"


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found
