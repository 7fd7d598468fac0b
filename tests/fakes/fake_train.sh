#!/usr/bin/env bash
# A shell launch script in the style of run_b3.sh, over the fake trainer.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "$0")/fake_train.py" "$@"
