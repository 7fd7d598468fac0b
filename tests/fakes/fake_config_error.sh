#!/usr/bin/env bash
# A launch script that refuses its config as codes/train.py does: a line of log, the one-line
# reason, a blank line, then exit 2 (bad config). Each launch appends a line to
# $HPSYS_RUN_DIR/../launches.txt so a test can count them.
echo "$HPSYS_EXPERIMENT_ID" >> "$HPSYS_RUN_DIR/../launches.txt"
echo "fake training $WANDB_NAME"
echo "error: tests/fakes/base.yaml:12: lr: expected a number > 0, got -1" >&2
echo ""
exit 2
