"""Experiments forked from a preloaded interpreter (run/preload.py) end as plain subprocesses."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from hyperparameter_system.core.processes import alive
from hyperparameter_system.run import launcher, preload
from hyperparameter_system.run.launcher import Launch

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fakes" / "fake_train.py"
TINY = {"model_name": "test_resnet", "image_size": 32, "batch_size": 32, "epochs": 1,
        "limit_samples": 160, "cpu_threads": 2}


@pytest.fixture(scope="module")
def server():
    made = preload.Server(["yaml", "json"], str(ROOT))
    yield made
    made.shutdown()


def _launch(tmp_path: Path, script: Path, config: dict, name: str = "x",
            env: dict | None = None, timeout: float | None = None) -> Launch:
    run_dir = tmp_path / "runs" / name
    cfg = tmp_path / f"{name}.yaml"
    full_env = {"HPSYS_RUN_DIR": str(run_dir), "HPSYS_EXPERIMENT_ID": f"pre{name}",
                "EXPERIMENT_CONFIG": str(cfg), "WANDB_MODE": "disabled",
                "WANDB_PROJECT": "proj", "WANDB_RUN_ID": f"pre{name}", "PYTHONUNBUFFERED": "1",
                **(env or {})}
    return Launch(f"pre{name}", (sys.executable, str(script), "--config", str(cfg)), full_env,
                  str(ROOT), str(cfg), yaml.safe_dump(config), str(run_dir), timeout,
                  "proj", name, f"pre{name}", "disabled")


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    return path


def _ending(outcome: launcher.Outcome) -> tuple:
    return (outcome.status, outcome.exit_code, outcome.signal, outcome.error,
            outcome.config_error)


def test_env_argv_and_cwd_reach_the_forked_child(tmp_path, server) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "3", "OMP_NUM_THREADS": "1", "WANDB_TAGS": "a,b"}
    plain = launcher.execute(_launch(tmp_path, FAKE, {"fake": {}}, "plain", env))
    forked = launcher.execute(_launch(tmp_path, FAKE, {"fake": {}}, "forked", env),
                              server=server)
    assert plain.status == forked.status == "done"
    assert server.starts >= 1
    a, b = (json.loads((tmp_path / "runs" / n / "record.json").read_text())
            for n in ("plain", "forked"))
    assert a["cwd"] == b["cwd"] == str(ROOT)
    assert a["argv"][:2] == b["argv"][:2] == [str(FAKE), "--config"]
    expected = {**env, "WANDB_MODE": "disabled", "WANDB_PROJECT": "proj"}
    for key, value in expected.items():
        assert b["env"][key] == a["env"][key] == value
    assert (a["env"]["WANDB_RUN_ID"], b["env"]["WANDB_RUN_ID"]) == ("preplain", "preforked")
    assert "fake training" in (tmp_path / "runs" / "forked" / "train.log").read_text()


@pytest.mark.parametrize("body", [
    "import sys\nsys.exit(3)\n",
    "raise ValueError('boom')\n",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "import sys\nsys.exit(2)\n",
    "raise KeyboardInterrupt\n",
    "print('fine')\n",
])
def test_exits_are_recorded_exactly_as_for_a_subprocess(tmp_path, server, body) -> None:
    script = _script(tmp_path, body)
    plain = launcher.execute(_launch(tmp_path, script, {}, "p"))
    forked = launcher.execute(_launch(tmp_path, script, {}, "f"), server=server)
    assert _ending(forked) == _ending(plain)
    if "ValueError" in body:
        log = (tmp_path / "runs" / "f" / "train.log").read_text()
        assert "ValueError: boom" in log and "runpy" not in log


def test_timeout_and_stop_end_the_whole_tree(tmp_path, server) -> None:
    script = _script(tmp_path, """
        import os, subprocess, sys, time
        kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open(os.path.join(os.environ["HPSYS_RUN_DIR"], "kid"), "w").write(str(kid.pid))
        time.sleep(60)
        """)
    timed = launcher.execute(_launch(tmp_path, script, {}, "t", timeout=1.5), server=server)
    assert timed.status == "timeout"
    flag = threading.Event()
    threading.Timer(1.5, flag.set).start()
    stopped = launcher.execute(_launch(tmp_path, script, {}, "s"), stop=flag.is_set,
                               server=server)
    assert stopped.status == "interrupted"
    for name in ("t", "s"):
        kid = int((tmp_path / "runs" / name / "kid").read_text())
        assert not alive(kid)


def test_a_server_crash_fails_nothing_running_and_it_restarts(tmp_path) -> None:
    made = preload.Server(["yaml"], str(ROOT))
    try:
        script = _script(tmp_path, "import time, sys\ntime.sleep(1.5)\nsys.exit(5)\n")
        box = {}
        runner = threading.Thread(target=lambda: box.update(
            o=launcher.execute(_launch(tmp_path, script, {}, "a"), server=made)))
        runner.start()
        time.sleep(0.7)
        made._proc.kill()  # the server dies while its child trains
        runner.join(10)
        assert box["o"].exit_code == 5 and box["o"].status == "failed"
        again = launcher.execute(_launch(tmp_path, FAKE, {"fake": {}}, "b"), server=made)
        assert again.status == "done" and made.starts == 2
    finally:
        made.shutdown()


def test_a_module_that_fails_to_import_warns_and_falls_back(tmp_path) -> None:
    made = preload.Server(["no_such_module_hpsys"], str(ROOT))
    with pytest.warns(RuntimeWarning, match="no_such_module_hpsys"):
        outcome = launcher.execute(_launch(tmp_path, FAKE, {"fake": {}}, "w"), server=made)
    assert outcome.status == "done" and made.disabled
    assert launcher.execute(_launch(tmp_path, FAKE, {"fake": {}}, "w2"), server=made).status \
        == "done"  # no second warning: plain from now on


def test_shell_and_other_scripts_run_plain(server) -> None:
    assert preload.python_script(("./run_b3.sh",)) is None
    assert preload.python_script(("/usr/bin/env", "x.py")) is None
    assert preload.python_script((sys.executable, "-m", "x")) is None
    assert preload.python_script((sys.executable, "codes/train.py", "--config", "c")) \
        == "codes/train.py"


RUNNER = """
import json, sys, time
sys.path.insert(0, {root!r})
from hyperparameter_system.run import preload
from pathlib import Path
made = preload.Server(["yaml"], {root!r})
log = open({log!r}, "ab")
kid = made.start([sys.executable, {script!r}], {root!r}, dict(__import__("os").environ), log)
print(json.dumps([made._proc.pid, kid.pid]), flush=True)
time.sleep(60)
"""


def test_sigkill_of_the_runner_leaves_no_orphan(tmp_path) -> None:
    script = _script(tmp_path, "import time\ntime.sleep(60)\n")
    code = RUNNER.format(root=str(ROOT), log=str(tmp_path / "log"), script=str(script))
    runner = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        server_pid, kid = json.loads(runner.stdout.readline())
        assert alive(server_pid) and alive(kid)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
        deadline = time.monotonic() + 10
        while (alive(server_pid) or alive(kid)) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(server_pid) and not alive(kid)
    finally:
        runner.kill()


@pytest.mark.slow
def test_builtin_trainer_metrics_are_bit_identical_and_cuda_untouched(tmp_path) -> None:
    """The built-in trainer, TINY on the embedded data: the same metrics to the last digit."""
    data = ROOT / "data"
    if not (data / "train.csv").exists():
        pytest.skip("no data/: make data")
    base = yaml.safe_load((ROOT / "codes" / "config_v2.yaml").read_text())
    base.update(TINY, data_dir=str(data), output_dir=str(tmp_path / "out"), seed=7)
    base.setdefault("wandb", {})["mode"] = "disabled"
    made = preload.Server(["torch", "timm", "torchvision", "matplotlib", "sklearn.metrics"],
                          str(ROOT))
    try:
        train = ROOT / "codes" / "train.py"
        plain = launcher.execute(_launch(tmp_path, train, base, "plain"))
        forked = launcher.execute(_launch(tmp_path, train, base, "forked"), server=made)
        assert made.starts == 1 and made.cuda_initialized is False
    finally:
        made.shutdown()
    assert plain.status == forked.status == "done", forked.log_tail

    def lines(name):
        rows = [json.loads(x) for x in
                (tmp_path / "runs" / name / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "seconds" and "time" not in k}
                for r in rows]

    assert lines("plain") == lines("forked")
    assert plain.result["metrics"] == forked.result["metrics"]


PLANNING = """#!/usr/bin/env bash
set -euo pipefail
cd "{root}"
export HPSYS_FROM_SCRIPT=yes
CMD=("${{PYTHON:-python3}}" tests/fakes/fake_train.py "$@")
if [[ -n "${{HPSYS_EXEC_PLAN:-}}" ]]; then
  {fail}{{ printf '%s\\0' "$PWD" "${{#CMD[@]}}" "${{CMD[@]}}"; env -0; }} > "$HPSYS_EXEC_PLAN"
  exit 0
fi
exec "${{CMD[@]}}"
"""


def _shell_launch(tmp_path: Path, name: str, fail: str = "") -> Launch:
    script = tmp_path / f"{name}.sh"
    script.write_text(PLANNING.format(root=ROOT, fail=fail))
    script.chmod(0o755)
    made = _launch(tmp_path, FAKE, {"fake": {}}, name)
    return dataclasses.replace(made, argv=(str(script), "--config", made.config_path))


def _forks_seen(server, monkeypatch) -> list[str | None]:
    """The argv of each start the server was asked for, when it forked it (else None)."""
    seen: list = []
    real = server.start

    def start(argv, cwd, env, log):
        child = real(argv, cwd, env, log)
        seen.append(list(argv) if child is not None else None)
        return child

    monkeypatch.setattr(server, "start", start)
    return seen


def test_a_shell_script_that_says_its_command_is_forked_as_it_would_exec(
        tmp_path, server, monkeypatch) -> None:
    """run_b3.sh's way (HPSYS_EXEC_PLAN): what the script does before its exec (cd, export)
    holds for the forked command, which runs exactly as the script would have run it."""
    plain = launcher.execute(_shell_launch(tmp_path, "plain"))
    seen = _forks_seen(server, monkeypatch)
    forked = launcher.execute(_shell_launch(tmp_path, "forked"), server=server)
    assert plain.status == forked.status == "done"
    assert len(seen) == 1 and seen[0][1] == "tests/fakes/fake_train.py"  # the python, forked
    a, b = (json.loads((tmp_path / "runs" / n / "record.json").read_text())
            for n in ("plain", "forked"))
    assert a["cwd"] == b["cwd"] == str(ROOT)
    assert a["argv"][:2] == b["argv"][:2] == ["tests/fakes/fake_train.py", "--config"]
    assert a["env"]["HPSYS_FROM_SCRIPT"] == b["env"]["HPSYS_FROM_SCRIPT"] == "yes"
    assert "HPSYS_EXEC_PLAN" not in b["env"]


def test_a_script_whose_plan_fails_runs_as_it_always_did(tmp_path, server,
                                                         monkeypatch) -> None:
    seen = _forks_seen(server, monkeypatch)
    outcome = launcher.execute(_shell_launch(tmp_path, "nope", fail="false; "), server=server)
    assert outcome.status == "done" and seen == [None]  # the script itself, plainly


def test_the_shipped_launch_scripts_say_the_trainer_command() -> None:
    from hyperparameter_system.run import exec_plan

    for script in ("run_b3.sh", "run_absolute.sh"):
        assert exec_plan.offered(("./" + script,), str(ROOT))
        said = exec_plan.plan(("./" + script,), str(ROOT),
                              {**os.environ, "EXPERIMENT_CONFIG": "/tmp/x.yaml"})
        assert said is not None and said.cwd == str(ROOT)
        assert said.argv[1:] == ("codes/train.py", "--config", "/tmp/x.yaml")
        assert preload.python_script(said.argv) is not None
    assert not exec_plan.offered(("tests/fakes/fake_train.sh",), str(ROOT))
