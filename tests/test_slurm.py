"""The Slurm executor on a real single-node Slurm (tests/slurm_cluster.py: munged, slurmctld,
slurmd in a temp folder, on 127.0.0.1): every experiment a job, faults (requeue, time limit,
scancel, Ctrl-C, a SIGKILLed runner) handled as the README's "Slurm" section says."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from parallel_support import fake_settings
from slurm_cluster import slurm  # noqa: F401 - the session fixture

from hyperparameter_system.app import api
from hyperparameter_system.config.settings import Settings
from hyperparameter_system.run import launcher
from hyperparameter_system.run.slurm_executor import Job, SlurmDispatch

RUNNER = (sys.executable, str(Path(__file__).resolve().parents[1] / "hyperparameter_system"
                              / "experiment_runner.py"))


def wait_for(what: Callable[[], Any], timeout: float, said: str) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {said}")


def started_jobs(settings: Settings, count: int = 1) -> list[str] | None:
    """The job ids the ledger holds for running experiments, once there are `count`."""
    jobs = [r.job for r in api.open_ledger(settings).rows() if r.status == "running" and r.job]
    return jobs if len(jobs) >= count else None


def state(cluster, job: str) -> str:
    text = cluster.scontrol("show", "job", job, "-o")
    return text.split("JobState=")[1].split()[0] if "JobState=" in text else ""


def release(cluster, job: str) -> None:
    """A requeued job waits ~2 minutes for its begin time; tests let it go after a second
    (slurmd refuses a job whose credential was revoked in the same second: "already killed")."""
    wait_for(lambda: state(cluster, job) == "PENDING", 60, f"job {job} requeued")
    time.sleep(1.2)
    cluster.scontrol("update", f"jobid={job}", "StartTime=now")


def in_thread(settings: Settings) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(
        result=api.run(settings, api.select(settings))), daemon=True)
    thread.start()
    return thread, box


def epochs(run_dir: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in
            (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_the_cluster_runs_a_job_on_loopback(slurm, tmp_path):  # noqa: F811
    out = tmp_path / "out.txt"
    subprocess.run(["sbatch", "-o", str(out), "--wrap", "echo $SLURM_JOB_ID"],
                   check=True, capture_output=True, timeout=60)
    wait_for(lambda: out.exists() and out.read_text().strip().isdigit(), 30, "the job's output")
    if shutil.which("ss") is None:  # iproute2 absent: the ports are not listed
        return
    listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    daemons = [line for line in listening.splitlines() if "slurm" in line]
    assert daemons and all("127.0.0.1:" in line for line in daemons), daemons


SLURM = {"executor": "slurm", "gpus": "none", "max_parallel": 3, "heartbeat_s": 0.5,
         "stale_after_s": 10, "slurm": {"poll_s": 0.3, "signal_s": 5}}


def test_a_matrix_runs_as_slurm_jobs(slurm, tmp_path):  # noqa: F811
    """Every experiment a job (its id and node in the ledger), results and summary as
    locally; the overhead per experiment (submit to start, end to runner) is printed."""
    options = [{"fake.sleep": 0.5, "fake.metric": m} for m in (0.3, 0.6, 0.9)]
    settings = fake_settings(tmp_path, options, SLURM)
    result = api.run(settings, api.select(settings))
    assert [o.status for o in result.outcomes] == ["done"] * 3, [o.error for o in result.outcomes]
    rows = api.open_ledger(settings).rows()
    jobs = {r.job for r in rows}
    assert len(jobs) == 3 and all(j and j.isdigit() for j in jobs)
    assert {r.node for r in rows} == {slurm.node}
    assert all(r.status == "done" and r.metric is not None for r in rows)
    best = max(r.metric for r in rows)
    assert best == pytest.approx(0.9)
    summary = api.summarize(settings)
    assert summary.models
    overhead = [(o.extra["submit_to_start_s"], o.extra["end_to_runner_s"])
                for o in result.outcomes]
    print("slurm overhead (submit->start, end->runner):", overhead)
    assert not slurm.jobs()
    job_table = next(t for t in api.report(settings).tables if t.key == "jobs")
    assert sorted(row[4] for row in job_table.rows) == sorted(jobs)
    shown = subprocess.run([*RUNNER, "--config", str(settings.path), "--summary"],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "200"}).stdout
    assert "Slurm jobs" in shown and all(job in shown for job in jobs), shown


def test_matrix_and_dry_run_show_the_sbatch_options(master_config, cli):
    path = master_config(execution={"executor": "local", "slurm": {
        "time": "2:00:00", "partition": "gpu", "mem": "8G", "gpus_per_experiment": 1,
        "setup": ["module load cuda"], "additional": {"exclusive": True, "gres": "gpu:1"}}})
    expected = ("a Slurm job each: sbatch --job-name=hpsys-<id> --cpus-per-task=1 --gpus=1 "
                "--partition=gpu --time=2:00:00 --mem=8G --exclusive --gres=gpu:1 --requeue "
                "--signal=B:USR1@120")
    for flag in ("--matrix", "--dry-run"):
        out = cli("--config", str(path), flag, "--executor", "slurm", env={"COLUMNS": "400"})
        assert out.returncode == 0, out.stderr
        assert expected in " ".join(out.stdout.split()), out.stdout


@pytest.mark.parametrize(("slurm_block", "said"), [
    ({"time": "soon"}, "execution.slurm.time: expected minutes or an sbatch time"),
    ({"mem": "lots"}, "execution.slurm.mem: expected a size"),
    ({"max_jobs": 0}, "execution.slurm.max_jobs: expected a value >= 1"),
    ({"partiton": "gpu"}, "execution.slurm.partiton: unknown key (did you mean 'partition'?)"),
    ({"additional": {"requeue": True}}, "--requeue is set by the runner"),
])
def test_bad_slurm_settings_are_one_line(master_config, cli, slurm_block, said):
    """Checked before anything is submitted, with or without a cluster."""
    path = master_config(execution={"executor": "slurm", "slurm": slurm_block})
    out = cli("--config", str(path), "--dry-run")
    assert out.returncode == 2, out.stderr
    assert said in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert f"{path.name}:" in out.stderr


RESUMABLE = {"+fake.resumable": True, "+fake.epoch_s": 1}


def test_a_requeued_job_resumes_from_its_checkpoint(slurm, tmp_path):  # noqa: F811
    """`scontrol requeue` mid-training: the job's next run goes on from the checkpoint, with
    the same W&B run id; every epoch once in metrics.jsonl."""
    settings = fake_settings(tmp_path, [{**RESUMABLE, "fake.epochs": 6}], SLURM)
    thread, box = in_thread(settings)
    (job,) = wait_for(lambda: started_jobs(settings), 60, "the job to start")
    run_dir = Path(api.open_ledger(settings).rows()[0].run_dir)
    wait_for(lambda: (run_dir / "metrics.jsonl").exists() and len(epochs(run_dir)) >= 2, 30,
             "two epochs")
    assert slurm.scontrol("requeue", job).strip() == ""
    release(slurm, job)
    thread.join(90)
    (outcome,) = box["result"].outcomes
    assert outcome.status == "done", outcome.error
    assert epochs(run_dir) == [1, 2, 3, 4, 5, 6]
    assert outcome.result["resumed_from_epoch"] >= 2
    row = api.open_ledger(settings).rows()[0]
    assert outcome.result["wandb"]["run_id"] == row.wandb_run_id == row.id
    record = json.loads((run_dir / "record.json").read_text())  # the second run's
    assert record["env"]["HPSYS_RESUME"].endswith("ckpt.json")
    assert outcome.extra["slurm_restarts"] == 1 and row.job == job


def test_a_time_limit_requeues_and_finishes(slurm, tmp_path):  # noqa: F811
    """Warned before its one-minute limit (--signal), the job ends the script and requeues
    itself; its next run resumes (a second warning is let pass: requeues: 1) and finishes.
    Slurm checks limits every 30 s, so the warning comes within ~31 s: 33 epochs of 1 s."""
    execution = {**SLURM, "slurm": {**SLURM["slurm"], "time": 1, "signal_s": 59,
                                    "requeues": 1}}
    settings = fake_settings(tmp_path, [{**RESUMABLE, "fake.epochs": 33}], execution)
    thread, box = in_thread(settings)
    (job,) = wait_for(lambda: started_jobs(settings), 60, "the job to start")
    release(slurm, job)
    thread.join(120)
    (outcome,) = box["result"].outcomes
    assert outcome.status == "done", outcome.error
    assert outcome.extra["slurm_restarts"] == 1
    assert outcome.result["resumed_from_epoch"] >= 1
    run_dir = Path(outcome.run_dir)
    assert epochs(run_dir) == list(range(1, 34))
    assert "time limit near: requeueing" in (run_dir / "slurm" / f"slurm-{job}.out").read_text()


def test_scancel_from_outside_is_recorded_cancelled_not_retried(slurm, tmp_path):  # noqa: F811
    settings = fake_settings(tmp_path, [{"fake.sleep": 60}],
                             {**SLURM, "retry_failed": 2})
    thread, box = in_thread(settings)
    (job,) = wait_for(lambda: started_jobs(settings), 60, "the job to start")
    subprocess.run(["scancel", job], check=True, timeout=20)
    thread.join(60)
    (outcome,) = box["result"].outcomes  # one attempt: a cancel is no failure of the option
    assert outcome.status == "interrupted"
    assert f"cancelled from outside (scancel): Slurm job {job} CANCELLED" in outcome.error
    row = api.open_ledger(settings).rows()[0]
    assert row.status == "interrupted" and row.error == outcome.error
    assert not slurm.jobs()


def runner(settings: Settings, *args: str) -> subprocess.Popen:
    """The CLI as a user starts it (SLURM_CONF and PYTHONPATH reach it and its jobs)."""
    return subprocess.Popen([*RUNNER, "--config", str(settings.path), "--all", *args],
                            cwd=settings.root, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_cancels_every_job_within_seconds(slurm, tmp_path, signum):  # noqa: F811
    settings = fake_settings(tmp_path, [{"fake.sleep": 60, "fake.metric": m}
                                        for m in (0.1, 0.2, 0.3)], SLURM)
    proc = runner(settings)
    try:
        wait_for(lambda: started_jobs(settings, 3), 60, "three jobs to start")
        sent = time.time()
        proc.send_signal(signum)
        wait_for(lambda: not slurm.jobs(), 15, "squeue to show no job")
        assert time.time() - sent < 10
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode != 0, out
    rows = api.open_ledger(settings).rows()
    assert [r.status for r in rows] == ["interrupted"] * 3, out
    assert all(r.error == "interrupted by the user" for r in rows)


def test_a_sigkilled_runner_s_jobs_are_adopted_never_submitted_twice(slurm, tmp_path):  # noqa: F811
    """SIGKILL the runner with two jobs running and one experiment not yet submitted; the same
    command follows the two jobs to their end and submits the third: one job each."""
    options = [{"fake.sleep": 5, "fake.metric": m} for m in (0.1, 0.2, 0.3)]
    settings = fake_settings(tmp_path, options,
                             {**SLURM, "slurm": {**SLURM["slurm"], "max_jobs": 2}})
    first = runner(settings)
    try:
        before = wait_for(lambda: started_jobs(settings, 2), 60, "two jobs to start")
        first.kill()
        first.wait(10)
    finally:
        first.kill()
    assert sorted(slurm.jobs()) == sorted(before)  # the jobs outlive their runner
    second = runner(settings)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out
    rows = api.open_ledger(settings).rows()
    assert [r.status for r in rows] == ["done"] * 3, out
    assert set(before) <= {r.job for r in rows}
    outs = [list((Path(r.run_dir) / "slurm").glob("slurm-*.out")) for r in rows]
    assert all(len(found) == 1 for found in outs), outs  # one job per experiment
    assert len({r.job for r in rows}) == 3


def test_pruning_stops_weak_options_through_slurm(slurm, tmp_path):  # noqa: F811
    """The stopper reads metrics.jsonl and writes stop_request.json on the shared filesystem:
    pruning works on jobs as on local processes."""
    from test_pruning import SH, load, rows_by_option

    settings = load(tmp_path, {**SLURM, "max_parallel": 2, "pruning": SH})
    api.run(settings, api.select(settings))
    rows = rows_by_option(settings)
    assert {k: r.status for k, r in rows.items()} == {
        "baseline": "done", "best": "done", "weak": "pruned", "weaker": "pruned"}, \
        [r.error for r in rows.values()]
    # decided at epoch 2; on 2 busy cores the request may land as epoch 3 trains
    assert rows["weak"].note.startswith("epoch 2: ") and rows["weak"].pruned_epoch in (2, 3)
    assert all(r.job for r in rows.values())


def test_a_race_decides_through_slurm_as_it_does_locally(slurm, tmp_path):  # noqa: F811
    """Each paired seed of the race is a job; the verdicts are the local race's."""
    from test_racing import CLEAR_DECIDED, race_clear_pool

    seeds, found = race_clear_pool(tmp_path, SLURM)
    assert seeds == {"big": 2, "worse": 2, "same": 2, "baseline": 2}
    assert found == CLEAR_DECIDED
    assert not slurm.jobs()


def test_a_failing_setup_line_is_recorded_with_slurm_s_reason(slurm, tmp_path):  # noqa: F811
    execution = {**SLURM, "slurm": {**SLURM["slurm"], "setup": ["echo preparing",
                                                               "exit 3"]}}
    settings = fake_settings(tmp_path, [{"fake.sleep": 0}], execution)
    (outcome,) = api.run(settings, api.select(settings)).outcomes
    assert outcome.status == "failed"
    assert "FAILED (exit code 3:0" in outcome.error
    assert "before the launcher wrote an outcome" in outcome.error
    assert "preparing" in outcome.log_tail  # the job's Slurm log, not the empty train.log


def test_a_job_sbatch_refuses_is_one_line(slurm, tmp_path, cli):  # noqa: F811
    execution = {**SLURM, "slurm": {**SLURM["slurm"], "partition": "nope"}}
    settings = fake_settings(tmp_path, [{"fake.sleep": 0}], execution)
    out = cli("--config", str(settings.path), "--all")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "execution.slurm: sbatch refused the job" in out.stderr
    assert "invalid partition" in out.stderr.lower() and "Traceback" not in out.stderr


def test_a_search_s_trials_run_as_jobs(slurm, tmp_path, master_writer):  # noqa: F811
    """A study asks for a trial whenever a slot frees: each trial a Slurm job, told back."""
    from test_search import _sections, search_block

    from hyperparameter_system.app import search_api as searches

    block = search_block(n_trials=3, pruner="none")
    settings = api.load(master_writer(tmp_path, **_sections(block, {**SLURM, "max_parallel": 2})))
    result = searches.run_search(settings, "lr_wd")
    assert [o.status for o in result.outcomes] == ["done"] * 3, [o.error for o in result.outcomes]
    status = searches.status(settings, "lr_wd")[0]
    assert status.counts["complete"] == 3
    assert len({r.job for r in api.open_ledger(settings).rows() if r.category == "lr_wd"}) == 3


def test_squeue_lines_are_read_with_slurm_s_exit_codes():
    from hyperparameter_system.run.slurm_executor import parse_jobs

    jobs = parse_jobs("1|hpsys-x|FAILED|768|NonZeroExitCode|vm|2|hpsys:x:y|\n"
                      "2|wrap|PENDING|0|Priority|(null)|0|(null)|\n")
    assert jobs["1"] == Job("1", "hpsys-x", "FAILED", "3:0", "NonZeroExitCode", "vm", 2,
                            "hpsys:x:y")
    assert jobs["2"].live and jobs["2"].node == "" and jobs["2"].comment == ""


@pytest.mark.parametrize(("state", "code", "status", "said"), [
    ("OUT_OF_MEMORY", "0:125", "failed", "killed for memory (--mem): Slurm job 7 OUT_OF_MEMORY"),
    ("NODE_FAIL", "0:0", "failed", "Slurm job 7 NODE_FAIL (exit code 0:0, NodeDown) before"),
    ("TIMEOUT", "0:15", "timeout", "Slurm time limit reached: Slurm job 7 TIMEOUT"),
    ("CANCELLED", "0:15", "interrupted", "cancelled from outside (scancel): Slurm job 7"),
    ("PREEMPTED", "0:15", "failed", "Slurm job 7 PREEMPTED"),
])
def test_how_a_job_ended_is_recorded_with_slurm_s_state(tmp_path, state, code, status, said):
    """The job's state, exit code and Slurm's reason; no cluster needed (OOM kills and node
    failures cannot be caused on the test cluster: no cgroups, one node)."""
    settings = fake_settings(tmp_path, [{"fake.sleep": 0}], SLURM)
    launch = launcher.plan(api.select(settings)[0], settings, 1)
    folder = Path(launch.run_dir) / "slurm"
    folder.mkdir(parents=True)
    (folder / "slurm-7.out").write_text("slurmstepd: error: the node went away\n")
    reason = "NodeDown" if state == "NODE_FAIL" else "None"
    outcome = SlurmDispatch(settings)._outcome(launch, folder, Job(
        "7", "hpsys-x", state, code, reason, "vm", 0), ours=False)
    assert outcome.status == status and said in outcome.error
    assert outcome.oom == (state == "OUT_OF_MEMORY")
    assert "the node went away" in outcome.log_tail and outcome.extra["slurm_job"] == "7"


@pytest.mark.slow
def test_the_quickstart_models_train_for_real_through_slurm(slurm, master_config, cli,  # noqa: F811
                                                            tmp_path, data_dir):
    """codes/train.py and a .sh launch script on the embedded digits, every run a job: the
    same results and winners as the local e2e test."""
    from test_e2e_train import MODELS, OPTIONS, tiny_system

    path = master_config(
        system=tiny_system(data_dir, tmp_path),
        models=MODELS, experiment_categories={"optimizer": {"options": OPTIONS}},
        execution={**SLURM, "max_parallel": 2, "experiment_timeout": 400})
    res = cli("--config", str(path), "--all", timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "6 done, 0 failed" in res.stdout
    res = cli("--config", str(path), "--summary")
    winners = [line for line in res.stdout.splitlines()
               if " adamw_fast " in line and line.rstrip().endswith("winner")]
    assert len(winners) == 2, res.stdout
    assert "Slurm jobs" in res.stdout
