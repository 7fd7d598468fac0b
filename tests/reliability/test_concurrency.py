"""Points 3-5: Ctrl-C during a parallel run, two runners on one ledger, rows left running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from relkit import (
    ROOT,
    completions,
    describe,
    experiment_pids,
    ledger_rows,
    master_dict,
    run_cli,
    start_cli,
    wait_for,
    write_master,
)

from hyperparameter_system.app import api
from hyperparameter_system.run import reaper
from hyperparameter_system.store.claims import runner_identity
from hyperparameter_system.store.ledger import Ledger
from hyperparameter_system.store.outcomes import Outcome

STUBBORN = "tests/reliability/stubborn_train.sh"


def test_sigint_ends_every_tree_within_5s_and_a_rerun_finishes(tmp_path):
    # at Ctrl-C the short one (2 s) must still run and, when stubborn, end within the 3 s
    # grace; the long one must outlast the grace
    data = master_dict(tmp_path, [{"fake.sleep": 6, "fake.metric": 0.1},
                                  {"fake.sleep": 2, "fake.metric": 0.2}])
    data["models"].insert(0, {"name": "stubborn", "script": STUBBORN})
    config = str(write_master(tmp_path, data))
    proc = start_cli(tmp_path, "--config", config, "--all")
    # 4 experiments, each a tree; two ignore SIGTERM and have a grandchild. Ctrl-C once all
    # four are past their start-up (record.json comes just before the sleep): however slowly
    # the machine starts them, the short ones then have at most their 2 s left
    assert wait_for(lambda: len(experiment_pids(tmp_path)) >= 6
                    and len(list(tmp_path.glob("runs/*/*/record.json"))) == 4, 30), proc.poll()
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    assert wait_for(lambda: not experiment_pids(tmp_path), 5), \
        describe(experiment_pids(tmp_path))
    assert time.monotonic() - started < 5
    proc.communicate(timeout=10)
    assert proc.returncode == 130
    rows = {(r["model"], r["metric"] or r["option_json"]): r["status"]
            for r in ledger_rows(tmp_path)}
    # the stubborn short one ignored SIGTERM and finished in the grace: done, not run again
    assert sorted(rows.values()) == ["done", "interrupted", "interrupted", "interrupted"], rows
    assert rows[("stubborn", 0.2)] == "done"
    assert len(completions(tmp_path)) == 1

    rerun = run_cli(tmp_path, "--config", config, "--all")
    assert rerun.returncode == 0, rerun.stderr
    assert {r["status"] for r in ledger_rows(tmp_path)} == {"done"}
    assert sorted(completions(tmp_path).values()) == [1, 1, 1, 1]
    assert all(r["attempts"] == 1 for r in ledger_rows(tmp_path))  # interrupted don't count


@pytest.mark.parametrize(("signum", "flags", "hint"), [
    (signal.SIGTERM, (), "run the same command again to resume"),
    (signal.SIGHUP, (), "run the same command again to resume"),  # the terminal closed
    (signal.SIGHUP, ("--rerun",), "run it again without --rerun to resume"),
], ids=["sigterm", "sighup", "sighup-rerun"])
def test_sigterm_and_sighup_stop_a_run_as_ctrl_c_does(tmp_path, signum, flags, hint):
    config = write_master(tmp_path, master_dict(tmp_path, [{"fake.sleep": 20}]))
    proc = start_cli(tmp_path, "--config", str(config), "--all", *flags)
    assert wait_for(lambda: experiment_pids(tmp_path), 20)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert not experiment_pids(tmp_path)
    assert [r["status"] for r in ledger_rows(tmp_path)] == ["interrupted"]
    assert hint in " ".join(out.split()), out


def test_two_runners_at_once_launch_nothing_twice(tmp_path):
    options = [{"fake.sleep": 0.3 + i % 3 / 4, "fake.metric": i / 10} for i in range(10)]
    config = str(write_master(tmp_path, master_dict(tmp_path, options)))
    runners = [start_cli(tmp_path, "--config", config, "--all") for _ in range(2)]
    for proc in runners:
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    rows = ledger_rows(tmp_path)
    assert {r["status"] for r in rows} == {"done"} and len(rows) == 10
    assert sorted(completions(tmp_path).values()) == [1] * 10
    assert all(r["attempts"] == 1 for r in rows)


def _settings(tmp_path):
    config = write_master(tmp_path, master_dict(tmp_path, [{"fake.sleep": 0.1}]))
    settings = api.load(config)
    return str(config), settings, api.select(settings)


def _mark_running(ledger: Ledger, exp_id: str, owner: str, heartbeat: float) -> None:
    with ledger._tx() as db:
        db.execute("UPDATE experiments SET status='running', owner=?, heartbeat=?, attempts=1"
                   " WHERE id=?", (owner, heartbeat, exp_id))


@contextlib.contextmanager
def _live_process():
    """A process of this host that lives through the block: a runner that is still there."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _one_row(tmp_path):
    """The master config, its ledger with one experiment recorded, that experiment, and this
    host's name."""
    config, settings, (exp,) = _settings(tmp_path)
    ledger = api.open_ledger(settings)
    ledger.sync([exp])
    return config, ledger, exp, runner_identity().rsplit(":", 1)[0]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_row_running_under_a_live_runner_is_never_taken(tmp_path):
    config, ledger, exp, host = _one_row(tmp_path)
    with _live_process() as owner:
        for fresh_owner in (f"{host}:{owner.pid}", "elsewhere:123"):
            _mark_running(ledger, exp.id, fresh_owner, time.time())
            assert ledger.claim(exp.id, "me:1", stale_after=5) is None
            busy = run_cli(Path(tmp_path), "--config", config, "--all")
            assert busy.returncode == 0, busy.stderr
            assert not completions(tmp_path)
            assert ledger.rows()[0].status == "running"


def test_a_row_left_running_by_a_dead_runner_is_taken_back(tmp_path):
    config, ledger, exp, host = _one_row(tmp_path)
    gone = (f"{host}:{_dead_pid()}", time.time())  # its owner exited, heartbeat fresh
    stale = ("elsewhere:123", time.time() - 60)  # another host's runner, silent for a minute
    for owner, beat in (gone, stale):
        _mark_running(ledger, exp.id, owner, beat)
        assert ledger.claim(exp.id, "me:1", stale_after=5) is not None
        _mark_running(ledger, exp.id, owner, beat)
        ledger.reset([exp.id])  # running rows are not reset
        assert ledger.rows()[0].status == "running"
    result = run_cli(tmp_path, "--config", config, "--all")
    assert result.returncode == 0, result.stderr
    assert ledger.rows()[0].status == "done" and completions(tmp_path)[exp.id] == 1


def test_a_stale_result_json_is_not_taken_for_the_dead_runners_attempt(tmp_path):
    config, settings, (exp,) = _settings(tmp_path)
    assert run_cli(tmp_path, "--config", config, "--all").returncode == 0
    ledger = api.open_ledger(settings)
    ledger.reset([exp.id])  # --rerun, and the runner is killed between claim and launch:
    host = runner_identity().rsplit(":", 1)[0]
    assert ledger.claim(exp.id, f"{host}:{_dead_pid()}", stale_after=5)
    # the result.json of the first run is still there: it must not pass for this attempt
    assert run_cli(tmp_path, "--config", config, "--all").returncode == 0
    assert completions(tmp_path)[exp.id] == 2


def test_concurrent_claims_have_one_winner(tmp_path):
    _, settings, (exp,) = _settings(tmp_path)
    ledger = api.open_ledger(settings)
    ledger.sync([exp])
    code = ("import sys; from hyperparameter_system.store.ledger import Ledger;"
            "print(Ledger(sys.argv[1]).claim(sys.argv[2], f'me:{sys.argv[3]}', 5) is not None)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(settings.system.ledger), exp.id,
                               str(os.getpid())], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(8)]
    won = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert won.count("True") == 1, won


def test_reaping_takes_only_this_ledgers_processes(tmp_path):
    def sleeper(**env: str) -> subprocess.Popen:
        return subprocess.Popen(["sleep", "30"], start_new_session=True,
                                env={**os.environ, "HPSYS_RUN_DIR": str(tmp_path), **env})

    ours = sleeper(HPSYS_EXPERIMENT_ID="e1", HPSYS_LEDGER="/a/l.db")
    theirs = sleeper(HPSYS_EXPERIMENT_ID="e1", HPSYS_LEDGER="/b/l.db")  # same id, other ledger
    stranger = sleeper()  # a recorded pid now in use by an unrelated process group
    try:
        assert reaper.reap("e1", pgid=stranger.pid, ledger="/a/l.db") == 0
        assert ours.wait(timeout=5) == -signal.SIGKILL
        assert theirs.poll() is None and stranger.poll() is None
    finally:
        for proc in (ours, theirs, stranger):
            proc.kill()
            proc.wait()


def test_a_live_owner_on_this_host_keeps_its_row_however_stale_its_heartbeat(tmp_path):
    """Its heartbeat may stall (a loaded machine, a suspended laptop): while its pid lives, the
    experiment is never run a second time."""
    _, ledger, exp, host = _one_row(tmp_path)
    with _live_process() as owner:
        _mark_running(ledger, exp.id, f"{host}:{owner.pid}", time.time() - 600)
        assert ledger.claim(exp.id, "me:1", stale_after=5) is None
    assert ledger.claim(exp.id, "me:1", stale_after=5) is not None  # now it is gone


def test_only_the_runner_holding_a_row_writes_its_outcome(tmp_path):
    _, settings, (exp,) = _settings(tmp_path)
    ledger = api.open_ledger(settings)
    ledger.sync([exp])
    assert ledger.claim(exp.id, "new:1", stale_after=5)  # taken over from "old:2"
    now = time.time()
    old = Outcome(exp.id, "failed", now, now, exit_code=1, error="the old runner's attempt")
    assert not ledger.set_started(exp.id, 4321, {"run_dir": "/old"}, owner="old:2")
    assert not ledger.finish(exp.id, old, None, owner="old:2", batch_override=8)
    assert not ledger.release(exp.id, "failed", "the old runner's error", owner="old:2")
    row = ledger.rows()[0]
    assert (row.status, row.owner, row.error, row.pid, row.run_dir, row.attempts,
            row.batch_override) == ("running", "new:1", None, None, None, 1, None)
    assert ledger.finish(exp.id, Outcome(exp.id, "done", now, now, exit_code=0), 0.5,
                         owner="new:1")
    assert ledger.rows()[0].status == "done"


def test_a_runner_whose_row_was_taken_over_leaves_the_new_owners_record(tmp_path):
    config = write_master(tmp_path, master_dict(tmp_path, [{"fake.sleep": 1.5}]))
    settings = api.load(config)
    (exp,) = api.select(settings)
    ledger = api.open_ledger(settings)
    box = {}
    runner = threading.Thread(target=lambda: box.update(r=api.run(settings, [exp])))
    runner.start()
    assert wait_for(lambda: ledger.rows() and ledger.rows()[0].pid, 20)
    with ledger._tx() as db:  # another host's runner took it over (this one looked silent)
        db.execute("UPDATE experiments SET owner='elsewhere:7', attempts=5 WHERE id=?", (exp.id,))
    runner.join(30)
    row = ledger.rows()[0]
    assert (row.status, row.owner, row.attempts, row.finished_at) == (
        "running", "elsewhere:7", 5, None)
    assert box["r"].outcomes == [] and box["r"].busy_elsewhere == 1


def test_a_pid_reused_after_the_claim_is_no_owner(tmp_path):
    """The dead runner's pid given to a later process must not keep its rows `running` forever;
    the same pid claimed after that process started still owns them."""
    _, ledger, exp, host = _one_row(tmp_path)
    with _live_process() as stranger:
        time.sleep(1.5)  # /proc start times are in clock ticks: leave no doubt which came first
        _mark_running(ledger, exp.id, f"{host}:{stranger.pid}", time.time())
        with ledger._tx() as db:
            db.execute("UPDATE experiments SET started_at=? WHERE id=?", (time.time(), exp.id))
        assert ledger.claim(exp.id, "me:1", stale_after=5) is None  # claimed after it started
        with ledger._tx() as db:
            db.execute("UPDATE experiments SET started_at=? WHERE id=?",
                       (time.time() - 3600, exp.id))
        assert ledger.claim(exp.id, "me:1", stale_after=5) is not None


def _open_ledger(path: str) -> None:
    Ledger(path).rows()


def test_runners_opening_a_new_ledger_at_once_all_get_it(tmp_path):
    """Runners started together on a fresh ledger race to create it and switch it to WAL;
    none may die of 'database is locked'."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    for round_ in range(8):
        path = str(tmp_path / f"ledger{round_}.db")
        procs = [context.Process(target=_open_ledger, args=(path,)) for _ in range(6)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [proc.exitcode for proc in procs] == [0] * 6


def test_a_second_ctrl_c_during_the_stop_leaves_no_row_running(tmp_path):
    # a second signal 20 ms after the first lands in the executor's cleanup (the trees ignore
    # SIGTERM: the stop waits out the grace): it must not cut it short (rows left running, no
    # "run finished" line)
    data = master_dict(tmp_path, [{"fake.sleep": 20, "fake.metric": i / 10} for i in range(2)])
    data["models"][0]["script"] = STUBBORN
    config = write_master(tmp_path, data)
    proc = start_cli(tmp_path, "--config", str(config), "--all")
    assert wait_for(lambda: len(list(tmp_path.glob("runs/*/*/record.json"))) == 2, 30)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    statuses = [r["status"] for r in ledger_rows(tmp_path)]
    assert "running" not in statuses, statuses
    assert set(statuses) <= {"interrupted", "done", "pending"}, statuses
    assert not experiment_pids(tmp_path)
    assert "finished" in out, out


def test_signals_held_ignores_python_handlers_only_and_restores_them():
    from hyperparameter_system.run.signals import signals_held
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
        with signals_held():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)  # no KeyboardInterrupt
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) is saved[signal.SIGINT]
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_rows_another_runner_finished_meanwhile_are_done_elsewhere(tmp_path):
    """The last line of a runner that shared the work tells the rows the other runner has
    finished by now apart from those it still runs (not '6 running under another runner')."""
    config = write_master(tmp_path, master_dict(tmp_path, [{"fake.sleep": 0.8},
                                                           {"fake.sleep": 0.1}]))
    settings = api.load(config)
    experiments = api.select(settings)
    held, mine = experiments[1], [e for e in experiments if e is not experiments[1]]
    ledger = api.open_ledger(settings)
    ledger.sync(experiments)
    with _live_process() as owner:
        _mark_running(ledger, held.id, f"{runner_identity().rsplit(':', 1)[0]}:{owner.pid}",
                      time.time())

        def other_runner_finishes() -> None:
            time.sleep(0.3)
            with ledger._tx() as db:
                db.execute("UPDATE experiments SET status='done' WHERE id=?", (held.id,))

        finisher = threading.Thread(target=other_runner_finishes)
        finisher.start()
        result = api.run(settings, experiments)
        finisher.join()
    assert result.count("done") == len(mine)
    assert (result.done_elsewhere, result.busy_elsewhere) == (1, 0)
