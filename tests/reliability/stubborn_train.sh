#!/usr/bin/env bash
# A launch script whose whole tree ignores SIGTERM and leaves a grandchild behind.
trap '' TERM
sleep 120 &
exec "${PYTHON:-python3}" "$(dirname "$0")/../fakes/fake_train.py" "$@"
