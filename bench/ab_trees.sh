#!/usr/bin/env bash
# A/B of two source trees under bench/sequencer_throughput.py, alternating, in one session: this
# machine is shared and noisy, so only runs interleaved in time compare.
#
#   git worktree add /tmp/before <commit>
#   bench/ab_trees.sh /tmp/before . [pairs]
#
# Each tree needs its native extension built in place (protocol/_native*.so; services/sequencer/
# before the protocol package existed): in a
# worktree, `.venv/bin/python setup.py build_ext --inplace` from that tree (or copy the .so if
# _native.c is the same). Prints the tracing-off/on and ceiling lines of each run.
set -euo pipefail
a=$1 b=$2 pairs=${3:-2}
python=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
for round in $(seq "$pairs"); do
  for tree in "$a" "$b"; do
    echo "=== $tree round $round"
    (cd "$tree" && "$python" bench/sequencer_throughput.py --rounds 1 --latency-s 3 2>&1 \
      | grep -E "^# tracing|ceiling") || true
  done
done
