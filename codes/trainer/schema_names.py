"""timm's optimizer names and the parameters of the schedulers the engine builds, kept as
constants so the schema never imports timm (or torch).

Generated from `timm.optim.list_optimizers()` and the constructors' signatures of the registry's
schedulers; tests/codes/test_schema.py fails when either moves on. Regenerate with
`python codes/trainer/schema_names.py` (it rewrites this file).
"""

from __future__ import annotations

TIMM_OPTIMIZERS: tuple[str, ...] = (
    # BEGIN GENERATED
    "adabelief",
    "adadelta",
    "adafactor",
    "adafactorbv",
    "adafactorbvc",
    "adagrad",
    "adahessian",
    "adam",
    "adamax",
    "adamc",
    "adamp",
    "adamuon",
    "adamw",
    "adamwlegacy",
    "adan",
    "adanw",
    "adopt",
    "adoptc",
    "adoptw",
    "bnbadam",
    "bnbadam8bit",
    "bnbadamw",
    "bnbadamw8bit",
    "bnbademamix",
    "bnbademamix8bit",
    "bnblion",
    "bnblion8bit",
    "bnbsgd",
    "bnbsgd8bit",
    "cadafactor",
    "cadafactorbv",
    "cadafactorbvc",
    "cadamc",
    "cadamp",
    "cadamw",
    "cadan",
    "cadanw",
    "cadopt",
    "cadoptc",
    "cadoptw",
    "clamb",
    "clambw",
    "claprop",
    "clion",
    "clionc",
    "cmars",
    "cnadamc",
    "cnadamw",
    "crmsproptf",
    "csgdc",
    "csgdp",
    "csgdw",
    "fusedadam",
    "fusedadamw",
    "fusedlamb",
    "fusednovograd",
    "fusedsgd",
    "kron",
    "kronc",
    "kronw",
    "lamb",
    "lambc",
    "lambcd",
    "lambcw",
    "lambw",
    "laprop",
    "lapropc",
    "larc",
    "lars",
    "lion",
    "lionc",
    "madgrad",
    "madgradw",
    "mars",
    "momentum",
    "muon",
    "nadam",
    "nadamc",
    "nadamlegacy",
    "nadamuon",
    "nadamw",
    "nesterov",
    "nesterovw",
    "nlarc",
    "nlars",
    "nmuon",
    "novograd",
    "novogradc",
    "novogradw",
    "radabelief",
    "radam",
    "radamlegacy",
    "radamw",
    "rmsprop",
    "rmsproptf",
    "rmsproptfc",
    "rmsproptfw",
    "sgd",
    "sgdc",
    "sgdp",
    "sgdw",
    # END GENERATED
)

# Every constructor parameter of the registry's schedulers (the engine passes each scheduler
# the ones its signature takes): the keys a `scheduler_params` block may hold.
SCHEDULER_PARAMS: tuple[str, ...] = (
    # BEGIN GENERATED PARAMS
    "T_0",
    "T_max",
    "T_mult",
    "anneal_strategy",
    "base_lr",
    "base_momentum",
    "cooldown",
    "cycle_momentum",
    "div_factor",
    "end_factor",
    "epochs",
    "eps",
    "eta_min",
    "factor",
    "final_div_factor",
    "gamma",
    "last_epoch",
    "max_lr",
    "max_momentum",
    "milestones",
    "min_lr",
    "mode",
    "patience",
    "pct_start",
    "power",
    "scale_fn",
    "scale_mode",
    "start_factor",
    "step_size",
    "step_size_down",
    "step_size_up",
    "steps_per_epoch",
    "three_phase",
    "threshold",
    "threshold_mode",
    "total_iters",
    "total_steps",
    "warmup_epochs",
    # END GENERATED PARAMS
)


def scheduler_params() -> list[str]:
    """The constructor parameters of every registered scheduler (imports torch)."""
    import importlib
    import inspect

    from trainer.parts.registry import SCHEDULERS

    names: set[str] = set()
    for info in SCHEDULERS:
        module, cls = info.target.rsplit(".", 1)
        signature = inspect.signature(getattr(importlib.import_module(module), cls))
        names.update(p for p in signature.parameters
                     if p not in ("self", "optimizer", "verbose", "lr_lambda"))
    return sorted(names)


def _regenerate() -> None:
    """Rewrite the generated block from the installed timm."""
    import re
    from pathlib import Path

    from timm.optim import list_optimizers

    path = Path(__file__)
    lines = "".join(f'    "{name}",\n' for name in list_optimizers())
    text = re.sub(
        r"(    # BEGIN GENERATED\n).*?(    # END GENERATED\n)",
        lambda m: m.group(1) + lines + m.group(2),
        path.read_text(encoding="utf-8"),
        flags=re.S,
    )
    params = "".join(f'    "{name}",\n' for name in scheduler_params())
    text = re.sub(
        r"(    # BEGIN GENERATED PARAMS\n).*?(    # END GENERATED PARAMS\n)",
        lambda m: m.group(1) + params + m.group(2),
        text,
        flags=re.S,
    )
    path.write_text(text, encoding="utf-8")
    print(f"wrote {len(list_optimizers())} optimizer names, {len(scheduler_params())} scheduler "
          f"parameters to {path}")


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # codes/, for `trainer`
    _regenerate()
