#!/usr/bin/env bash
# A/B of two source trees under bench/channels.py, alternating, in one session: this machine is
# shared and noisy, so only runs interleaved in time compare.
#
#   mkdir /tmp/before && git archive <commit> | tar -x -C /tmp/before
#   bench/ab_channels.sh /tmp/before . [pairs] [bench/channels.py's arguments...]
#
# Both trees run on this tree's .venv (PYTHONPATH puts each tree's packages first, for the bench
# and for the workers it starts) and node_modules (linked into the other tree if it has none).
# The default arguments: two hops at 1, 8, 32 and 128 in flight. Prints the rows of each run.
set -euo pipefail
a=$1 b=$2 pairs=${3:-1}
shift $(( $# < 3 ? $# : 3 ))
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--two-hop --payments 200 --in-flight 1,8,32,128 --hop-payments 1000 --ceiling-payments 10)
source "$(dirname "$0")/_ab.sh"
ab_alternate "$a" "$b" "$pairs" "in flight +[0-9,]+ payments/s|FAILED|C holds|Traceback" bench/channels.py "${args[@]}"
