"""The interactive menu with scripted answers: what each menu path would run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from hyperparameter_system import run_experiments
from hyperparameter_system.app import api
from hyperparameter_system.run.tally import RunResult
from hyperparameter_system.store.outcomes import Outcome
from hyperparameter_system.ui import commands, console, prompts

ROOT = Path(__file__).resolve().parent.parent
DOWN, ENTER = "\x1b[B", "\r"


def write_master(tmp_path: Path, name: str = "master.yaml", disabled: str = "m3") -> Path:
    """The fake-trainer master config: m1.a and m2 enabled, one model disabled, two categories."""
    models = [("m1.a", "python tests/fakes/fake_train.py"), ("m2", "tests/fakes/fake_train.sh"),
              ("m3", "python tests/fakes/fake_train.py")]
    lines = [
        f"system: {{project_root: {ROOT}, base_config: tests/fakes/base.yaml, "
        f"ledger: {tmp_path}/l.db, runs_dir: {tmp_path}/runs, temp_config_dir: {tmp_path}/tc, "
        "wandb_mode: disabled}",
        "models:",
        *(f"  - {{name: {n}, script: {s}" + (", enabled: false}" if n == disabled else "}")
          for n, s in models),
        "experiment_categories:",
        "  optimizer: {options: [{name: AdamW, lr: 0.001}, {name: SGD, lr: 0.01, momentum: 0.9}]}",
        "  fake: {options: [{fake.metric: 0.9}]}",
        "execution: {max_parallel: 2}",
    ]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def menu_env() -> dict[str, str]:
    """For the menu as a process (the in-process tests launch nothing: api.run is replaced)."""
    return {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}


@pytest.fixture
def settings(tmp_path):
    return api.load(write_master(tmp_path))


class Script:
    """Stands in for prompts.ask: answers in order, records every question; a path answer must
    pass the question's validation, as questionary would insist (a refused one is recorded)."""

    def __init__(self, answers):
        self.answers, self.asked, self.refused = list(answers), [], []

    def __call__(self, question):
        self.asked.append(question)
        answer = self.answers.pop(0)
        while isinstance(question, prompts.PathInput) and question.validate(answer) is not True:
            self.refused.append((answer, question.validate(answer)))
            answer = self.answers.pop(0)
        return answer


@pytest.fixture
def runs(monkeypatch):
    """api.run recorded instead of launched: one (experiments, rerun) per run."""
    calls = []

    def fake_run(settings, experiments, rerun=False, executor=None, display=None):
        calls.append(list(experiments))
        return RunResult()

    monkeypatch.setattr(api, "run", fake_run)
    return calls


def play(monkeypatch, settings, answers) -> Script:
    script = Script(answers)
    monkeypatch.setattr(prompts, "ask", script)
    run_experiments.menu(settings)
    assert script.answers == [], "the menu stopped before the script ended"
    return script


def seed(settings, experiments, status: str) -> None:
    """Put experiments in the ledger as if they had ended with `status`."""
    ledger = api.open_ledger(settings)
    ledger.sync(experiments)
    now = time.time()
    for e in experiments:
        ledger.finish(e.id, Outcome(e.id, status, now - 5, now, exit_code=0), None)


def pairs(experiments) -> set[tuple[str, str]]:
    return {(e.model, e.category) for e in experiments}


def test_show_matrix_shows_every_enabled_experiment(monkeypatch, settings, runs):
    shown = []
    monkeypatch.setattr(commands, "show_matrix", lambda s, exps: shown.append(list(exps)))
    play(monkeypatch, settings, ["matrix", "quit"])
    assert [e.id for e in shown[0]] == [e.id for e in api.select(settings)]
    assert {e.model for e in shown[0]} == {"m1.a", "m2"} and runs == []


def test_run_all_confirms_count_skipped_and_estimate(monkeypatch, settings, runs):
    everything = api.select(settings)
    seed(settings, everything[:2], "done")
    script = play(monkeypatch, settings, ["all", "none", "quit"])
    confirm = script.asked[1]
    assert isinstance(confirm, prompts.Select)
    assert f"Run {len(everything) - 2} of {len(everything)}" in confirm.message
    assert "2 already done, skipped" in confirm.message and "estimated" in confirm.message
    assert f"on {api.slot_count(settings)} slot(s)" in confirm.message
    assert [e.id for e in runs[0]] == [e.id for e in everything]  # the runner skips the done


def test_the_confirmation_offers_pruning_even_when_none_is_configured(monkeypatch, settings):
    """Every rule (and no pruning) is a choice of the run confirmation, the configured one
    (none here) under the pointer; the pick holds for this run, the config stays as it is."""
    ran = []
    monkeypatch.setattr(api, "run", lambda s, exps, **kw: ran.append(s) or RunResult())
    script = play(monkeypatch, settings, ["all", "median", "quit"])
    confirm = script.asked[1]
    assert [c.value for c in confirm.choices] == [
        "none", "successive_halving", "median", "hyperband", "patient", "no"]
    assert confirm.default == "none" and confirm.message.startswith("Run ")
    assert ran[0].execution.pruning.rule == "median" and ran[0].execution.pruning.on
    assert settings.execution.pruning.rule == "none"


def test_run_all_declined_runs_nothing(monkeypatch, settings, runs):
    script = play(monkeypatch, settings, ["all", "no", "quit"])
    assert "no time estimate yet" in script.asked[1].message and runs == []


def test_nothing_to_run_when_all_done(monkeypatch, settings, runs, capsys):
    seed(settings, api.select(settings), "done")
    script = play(monkeypatch, settings, ["all", "quit"])
    assert len(script.asked) == 2 and runs == []
    assert "nothing to run" in capsys.readouterr().out


def test_choose_models_preselects_enabled(monkeypatch, settings, runs):
    script = play(monkeypatch, settings, ["models", ["m3"], "none", "quit"])
    box = script.asked[1]
    assert isinstance(box, prompts.Checkbox)
    assert {c.value: c.checked for c in box.choices} == {"m1.a": True, "m2": True, "m3": False}
    assert pairs(runs[0]) == {("m3", c) for c in ("baseline", "optimizer", "fake")}


def test_choose_categories(monkeypatch, settings, runs):
    script = play(monkeypatch, settings, ["categories", ["fake"], "none", "quit"])
    assert [c.value for c in script.asked[1].choices] == ["optimizer", "fake"]
    assert pairs(runs[0]) == {(m, c) for m in ("m1.a", "m2") for c in ("baseline", "fake")}


def test_custom_asks_models_then_categories(monkeypatch, settings, runs):
    script = play(monkeypatch, settings, ["custom", ["m2"], ["optimizer"], "none", "quit"])
    assert [type(q).__name__ for q in script.asked] == ["Select", "Checkbox", "Checkbox",
                                                        "Select", "Select"]
    assert pairs(runs[0]) == {("m2", "baseline"), ("m2", "optimizer")} and len(runs[0]) == 3


def test_rerun_failed_runs_only_the_failed(monkeypatch, settings, runs, capsys):
    everything = api.select(settings)
    play(monkeypatch, settings, ["failed", "quit"])
    assert runs == [] and "no failed experiments" in capsys.readouterr().out
    seed(settings, everything[1:3], "failed")
    seed(settings, everything[3:4], "timeout")
    play(monkeypatch, settings, ["failed", "none", "quit"])
    assert [e.id for e in runs[0]] == [e.id for e in everything[1:4]]


def test_rerun_failed_finds_a_picked_disabled_model(monkeypatch, settings, runs):
    picked = api.select(settings, ["m3"], ["optimizer"])
    seed(settings, picked[1:2], "interrupted")
    play(monkeypatch, settings, ["failed", "none", "quit"])
    assert [e.id for e in runs[0]] == [picked[1].id]


def test_category_titles_count_their_options(settings):
    titles = [c.title for c in prompts.choose_categories(settings).choices]
    assert titles == ["optimizer (2 options)", "fake (1 option)"]


def test_summary_is_the_flags_report(monkeypatch, settings, runs):
    calls = []
    monkeypatch.setattr(commands, "report", lambda s, **kw: calls.append((s, kw)))
    play(monkeypatch, settings, ["summary", "summary", "quit"])
    assert calls == [(settings, {"summary": True})] * 2


def test_switch_config_validates_the_path(monkeypatch, settings, runs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    second = write_master(other, name="second.yaml", disabled="m1.a")
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: 3\n", encoding="utf-8")
    script = play(monkeypatch, settings, [
        "config", str(tmp_path / "missing.yaml"), str(broken), str(second), "all", "none", "quit"])
    assert [answer for answer, _ in script.refused] == [str(tmp_path / "missing.yaml"),
                                                        str(broken)]
    assert script.refused[0][1] == "not a file" and "broken.yaml" in script.refused[1][1]
    assert script.asked[2].message.startswith("second.yaml:")  # the menu names its file
    assert {e.model for e in runs[0]} == {"m2", "m3"}


def test_ctrl_c_at_a_prompt_goes_back_then_quits(monkeypatch, settings, runs):
    # categories -> models (the pick kept) -> main menu; models -> main menu; main menu: quit
    script = play(monkeypatch, settings, ["custom", ["m1.a"], None, None, "models", None, None])
    assert runs == [] and [q.message for q in script.asked] == [
        "master.yaml: what next?", "Models to run", "Categories to run", "Models to run",
        "master.yaml: what next?", "Models to run", "master.yaml: what next?"]
    assert {c.value: c.checked for c in script.asked[3].choices} == {
        "m1.a": True, "m2": False, "m3": False}
    assert {c.value: c.checked for c in script.asked[5].choices} == {
        "m1.a": True, "m2": True, "m3": False}  # a new pick starts from the enabled ones


def test_ctrl_c_at_the_categories_lets_the_models_be_picked_again(monkeypatch, settings, runs):
    script = play(monkeypatch, settings,
                  ["custom", ["m1.a"], None, ["m2", "m3"], ["fake"], "none", "quit"])
    assert [type(q).__name__ for q in script.asked] == [
        "Select", "Checkbox", "Checkbox", "Checkbox", "Checkbox", "Select", "Select"]
    assert pairs(runs[0]) == {(m, c) for m in ("m2", "m3") for c in ("baseline", "fake")}


def test_errors_and_interrupts_come_back_to_the_menu(monkeypatch, settings, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "run", interrupted)
    monkeypatch.setattr(api, "failed", lambda s: api.select(s, ["nope"]))
    play(monkeypatch, settings, ["all", "none", "failed", "quit"])
    err = capsys.readouterr().err
    assert "interrupted; back to the menu" in err and "unknown model" in err


def test_interrupted_run_shows_the_result(monkeypatch, settings, capsys):
    stopped = Outcome("x", "interrupted", 0.0, 1.0)
    monkeypatch.setattr(api, "run", lambda *a, **k: RunResult(outcomes=[stopped],
                                                              interrupted=True))
    play(monkeypatch, settings, ["all", "none", "quit"])
    out = capsys.readouterr().out
    assert "interrupted:" in out and "resume" in out and out.rstrip().endswith("bye")
    assert "same command" not in out and "Rerun failed experiments" in out  # no command here
    assert "0 failed, 0 timed out, 1 interrupted" in out


def test_main_loads_the_config_and_opens_the_menu(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(console, "interactive", lambda: True)
    monkeypatch.setattr(prompts, "ask", Script(["quit"]))
    assert run_experiments.main(["--config", str(write_master(tmp_path))]) == 0
    assert run_experiments.main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_a_bad_flag_is_one_line_and_exit_2(capsys):
    """As for the flags (experiment_runner): no usage dump, the flag named."""
    assert run_experiments.main(["--bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--bogus" in err and "usage" not in err, err


@pytest.mark.parametrize("command", [["hyperparameter_system/run_experiments.py"],
                                     ["-m", "hyperparameter_system"]])
def test_no_terminal_says_use_the_flags(command):
    done = subprocess.run([sys.executable, *command], cwd=ROOT, env=menu_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "experiment_runner.py --all" in done.stderr and "Traceback" not in done.stderr


def test_ask_returns_none_on_ctrl_c(monkeypatch):
    class Interrupted:
        def unsafe_ask(self):
            raise KeyboardInterrupt

    monkeypatch.setattr(prompts, "build", lambda question: Interrupted())
    assert prompts.ask(prompts.Confirm("go?")) is None


@pytest.mark.timeout(20)
def test_questions_build_real_questionary_prompts(settings):
    """Each declaration drives a real questionary prompt fed with keys."""
    cases = [
        (prompts.main_menu(settings), DOWN + ENTER, "all"),
        (prompts.choose_models(settings), DOWN + " " + ENTER, ["m1.a"]),
        (prompts.choose_categories(settings), " " + ENTER, ["fake"]),
        (prompts.Confirm("go?"), "n", False),
        (prompts.confirm_run(api.plan_run(settings, api.select(settings)), "median"), ENTER,
         "median"),
        (prompts.config_path("", run_experiments.config_problem),
         f"nope.yaml{ENTER}" + "\x7f" * 9 + f"{settings.path}{ENTER}", str(settings.path)),
    ]
    for question, keys, expected in cases:
        with create_pipe_input() as pipe:
            pipe.send_text(keys)
            asked = prompts.build(question, input=pipe, output=DummyOutput())
            assert asked.unsafe_ask() == expected, question
