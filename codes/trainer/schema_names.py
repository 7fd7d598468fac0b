"""timm's optimizer names, kept as a constant so the schema never imports timm (or torch).

Generated from `timm.optim.list_optimizers()`; tests/codes/test_schema.py fails when timm's list
moves on. Regenerate with `python codes/trainer/schema_names.py` (it rewrites this file).
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
    path.write_text(text, encoding="utf-8")
    print(f"wrote {len(list_optimizers())} optimizer names to {path}")


if __name__ == "__main__":
    _regenerate()
