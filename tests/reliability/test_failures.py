"""Point 2: each way an experiment can fail ends it alone, with the cause and its log tail."""

from __future__ import annotations

import json

from relkit import completions, ledger_rows, master_dict, run_cli, write_master

CASES = {  # option -> what the ledger's error must say
    "+fake.tag": ("ok-a", None),
    "fake.exit_code": (3, "exit code 3"),
    "+fake.signal": (9, "SIGKILL"),
    "+fake.segfault": (True, "SIGSEGV"),
    "fake.sleep": (60, "timed out after 4 s"),
    "+fake.no_result": (True, "no readable result.json"),
}


def test_each_failure_alone_with_its_cause(tmp_path):
    options = [{key: value} for key, (value, _) in CASES.items()] + [{"fake.metric": 0.9}]
    write_master(tmp_path, master_dict(tmp_path, options, {"experiment_timeout": 4}))
    proc = run_cli(tmp_path, "--config", str(tmp_path / "master.yaml"), "--all")
    assert proc.returncode == 1, proc.stderr
    rows = {next(iter(json.loads(r["option_json"]))): r for r in ledger_rows(tmp_path)}
    for key, (_, cause) in CASES.items():
        row = rows[key]
        if cause is None:
            assert row["status"] == "done"
            continue
        assert row["status"] == ("timeout" if key == "fake.sleep" else "failed"), row
        assert cause in row["error"]
        assert "fake training" in row["log_tail"]
    assert rows["fake.metric"]["status"] == "done"
    # the two that succeeded and the one that exited 0 without a result ran to their end
    assert sum(completions(tmp_path).values()) == 3
    # the summary names each failure's reason and shows its log tail (wide: no cell wraps)
    summary = run_cli(tmp_path, "--config", str(tmp_path / "master.yaml"), "--summary",
                      COLUMNS="1000")
    assert summary.returncode == 0, summary.stderr
    for key, (_, cause) in CASES.items():
        if cause is None:
            continue
        assert cause in summary.stdout, (key, summary.stdout)
        last_line = rows[key]["log_tail"].strip().splitlines()[-1].strip()
        assert last_line in summary.stdout, (key, last_line, summary.stdout)
    assert "failing on purpose" in summary.stdout  # what the exit-code fake logs as it fails
