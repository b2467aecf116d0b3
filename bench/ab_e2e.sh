#!/usr/bin/env bash
# A/B of two source trees under bench/e2e_throughput.py, alternating, in one session: this machine
# is shared and noisy, so only runs interleaved in time compare.
#
#   mkdir /tmp/before && git archive <commit> | tar -x -C /tmp/before
#   bench/ab_e2e.sh /tmp/before . [pairs] [bench/e2e_throughput.py's arguments...]
#
# Each tree runs its own bench/e2e_throughput.py (the older one may lack the newer knobs: pass only
# the arguments both know) on this tree's .venv, PYTHONPATH putting the tree's packages first (for
# the bench and the tree it starts), and node_modules (linked into the other tree if it has none).
# Prints each run's report table.
set -euo pipefail
a=$1 b=$2 pairs=${3:-1}
shift $(( $# < 3 ? $# : 3 ))
args=("$@")
source "$(dirname "$0")/_ab.sh"
ab_alternate "$a" "$b" "$pairs" "^\||^command|^load average|Traceback|Error" bench/e2e_throughput.py "${args[@]}"
