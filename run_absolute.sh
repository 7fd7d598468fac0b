#!/usr/bin/env bash
# EfficientNet-B4 recipe: train with an experiment config, passing further arguments on as
# overrides. The config is ${EXPERIMENT_CONFIG:-${1:-codes/config_v2.yaml}}.
#   ./run_absolute.sh                                 # base config, recipe model
#   ./run_absolute.sh temp_configs/001_x.yaml lr=0.01 # that config (its model wins), overrides
#   EXPERIMENT_CONFIG=cfg.yaml ./run_absolute.sh epochs=2
# The recipe's model is applied only with the base config: an experiment config keeps its own.
set -euo pipefail
RECIPE_MODEL="${RECIPE_MODEL:-efficientnet_b4.ra2_in1k}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi

# A first argument without '=' is the config path (the runner may pass it as $1 too).
ARG_CONFIG=""
if [[ $# -gt 0 && "$1" != *=* && "$1" != -* ]]; then
  ARG_CONFIG="$1"
  shift
fi
CONFIG="${EXPERIMENT_CONFIG:-${ARG_CONFIG:-codes/config_v2.yaml}}"

RECIPE=()
if [[ -z "${EXPERIMENT_CONFIG:-}" && -z "$ARG_CONFIG" ]]; then
  RECIPE=("model_name=$RECIPE_MODEL")
fi
CMD=("$PY" codes/train.py --config "$CONFIG" ${RECIPE[@]+"${RECIPE[@]}"} "$@")
# Under a runner with a preloaded interpreter, HPSYS_EXEC_PLAN names a file: say the command
# there instead of running it, and the runner forks it from an interpreter that has imported
# torch and timm already (hyperparameter_system/run/exec_plan.py).
if [[ -n "${HPSYS_EXEC_PLAN:-}" ]]; then
  { printf '%s\0' "$PWD" "${#CMD[@]}" "${CMD[@]}"; env -0; } > "$HPSYS_EXEC_PLAN"
  exit 0
fi
exec "${CMD[@]}"
