#!/usr/bin/env bash
# The GPU path on a machine with a CUDA device, in one command (about 10 minutes on one GPU):
#   benchmarks/gpu_check.sh            # mini suites at gpus_per_trial 1 and 0.5, bf16 and fp16;
#                                      # NLL evaluated in fp32; bf16 vs fp32 train-step throughput
#   benchmarks/gpu_check.sh --cpu      # smoke check of the script on a CPU (figures mean nothing)
# Prints a markdown table for docs/benchmarks.md; exit status 1 when a check fails. CI never runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
exec "$PY" benchmarks/gpu_check.py "$@"
