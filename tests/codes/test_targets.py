"""`_target_` mappings are built by hydra.utils.instantiate; a bad one is one line naming the
key and the target (torch-free: any importable class will do)."""

from __future__ import annotations

import fractions

import pytest
from trainer.errors import ConfigError
from trainer.parts.targets import call_target


def test_a_target_is_built_with_its_keys_and_the_accepted_defaults() -> None:
    built = call_target({"_target_": "fractions.Fraction", "numerator": 3}, "criterion",
                        denominator=4, not_taken=1)
    assert built == fractions.Fraction(3, 4)


def test_nested_targets_are_built_as_hydra_builds_them() -> None:
    built = call_target({"_target_": "builtins.dict",
                         "inner": {"_target_": "fractions.Fraction", "numerator": 1}}, "k")
    assert built == {"inner": fractions.Fraction(1)}


@pytest.mark.parametrize(("spec", "needle"), [
    ({"_target_": "Fraction"}, "criterion._target_: expected a dotted path"),
    ({"_target_": "nomod.X"}, "criterion._target_: cannot import 'nomod.X' (No module"),
    ({"_target_": "fractions.Fraction", "bogus": 1},
     "criterion: cannot build fractions.Fraction (Fraction.__new__() got an unexpected"),
    ({"_target_": "builtins.dict", "x": {"_target_": "nope.Y"}},
     "criterion: cannot build builtins.dict (Error loading 'nope.Y'"),
])
def test_a_bad_target_is_one_line(spec, needle, capsys) -> None:
    with pytest.raises(ConfigError) as err:
        call_target(spec, "criterion")
    assert err.value.one_line().startswith(needle), err.value.one_line()
    assert "\n" not in err.value.one_line()
    assert capsys.readouterr().err == ""  # Hydra's own logging of the failure is kept quiet
