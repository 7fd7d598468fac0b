#!/usr/bin/env bash
# EfficientNet-B3: the run_absolute.sh recipe with the B3 model (same config and override rules;
# HPSYS_EXEC_PLAN, a preloaded runner's question for the command, passes through to it).
set -euo pipefail
RECIPE_MODEL="${RECIPE_MODEL:-efficientnet_b3.ra2_in1k}" \
  exec "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/run_absolute.sh" "$@"
