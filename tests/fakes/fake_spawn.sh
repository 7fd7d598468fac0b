#!/usr/bin/env bash
# A launch script that leaves a long-lived grandchild (its pid in $HPSYS_RUN_DIR/grandchild.pid),
# then trains as the fake trainer: a timeout must end the grandchild too.
set -euo pipefail
mkdir -p "$HPSYS_RUN_DIR"
sleep 1000 &
echo $! > "$HPSYS_RUN_DIR/grandchild.pid"
exec "${PYTHON:-python3}" "$(dirname "$0")/fake_train.py" "$@"
