#!/usr/bin/env bash
# The scheduled retrain: what the systemd unit, the crontab line and the GitHub workflow run.
#   deploy/retrain.sh [sinernn retrain options]
# Installs what is missing (make install), then runs `sinernn retrain` and exits with ITS code:
#   0 a champion was promoted   1 every champion was kept   75 another retrain is running
#   2 bad input   3 a model diverged   4 tracking store unreachable   74 disk full   70 unexpected error
#   69 the install step failed
# (`make retrain` runs the same thing for a person at a terminal, but GNU make turns every
# non-zero exit into 2, so schedules call this script to keep the codes apart.)
set -u
cd "$(dirname "$0")/.." || exit 69
if ! make --no-print-directory --quiet install data/external/sample.csv >&2; then
    echo "retrain: the install step (make install) failed" >&2
    exit 69
fi
export PATH="$PWD/.venv/bin:$PATH"   # the stages' python and dvc
exec .venv/bin/sinernn retrain "$@"
