"""An option whose keys the script never read (result.json's `unused_keys`) is marked
"not honoured" with the keys: its score says nothing about the option."""

from __future__ import annotations

from types import SimpleNamespace

from hyperparameter_system.report.records import OptionStat


def _stat(unused: list[str], changes: dict) -> OptionStat:
    stat = OptionStat("m", "aug", {"type": "eda"}, "{}", "x", "aug_eda", changes, 0)
    stat.rows.append(SimpleNamespace(status="done", result={"unused_keys": unused},
                                     duration_s=1.0))
    return stat


def test_keys_the_script_did_not_read_are_named() -> None:
    stat = _stat(["augmentation", "mixup_alpha"],
                 {"online_augmentation": True, "augmentation.eda": True, "lr": 0.1})
    assert stat.unhonoured == ["augmentation.eda"]
    assert stat.status == "done, not honoured (augmentation.eda)"


def test_an_option_the_script_read_is_plainly_done() -> None:
    stat = _stat(["something_else"], {"lr": 0.1})
    assert stat.unhonoured == [] and stat.status == "done"
