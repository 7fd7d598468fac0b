#!/usr/bin/env bash
# A launch script that leaves its process group: a double fork through setsid leaves a
# `sleep 300` with parent 1 in a session of its own (its pid in $HPSYS_RUN_DIR/escaped.pid),
# then it sleeps past any test's timeout.
set -euo pipefail
mkdir -p "$HPSYS_RUN_DIR"
setsid bash -c 'sleep 300 & echo $! > "$HPSYS_RUN_DIR/escaped.pid"' < /dev/null > /dev/null 2>&1 &
wait
echo "fake training $WANDB_NAME, escaped $(cat "$HPSYS_RUN_DIR/escaped.pid")"
exec sleep 300
