"""Print the experiment matrix, as the original did:
`python hyperparameter_system/hyperparameter_configs.py [config]`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from hyperparameter_system.config.settings import load_settings
from hyperparameter_system.core.errors import EXIT_BAD_INPUT, HpsysError
from hyperparameter_system.matrix.experiments import build_matrix
from hyperparameter_system.ui import console


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = args[0] if args else "experiment_config.yaml"
    try:
        settings = load_settings(path)
        experiments = build_matrix(settings)
    except HpsysError as exc:
        console.error(str(exc))
        return EXIT_BAD_INPUT
    console.print_matrix(settings, experiments, statuses={}, estimates={})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
