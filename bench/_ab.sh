# Sourced by bench/ab_*.sh: the one alternating A/B loop over two source trees (this machine is
# shared and noisy, so only runs interleaved in time compare).
#
#   ab_alternate A B PAIRS FILTER SCRIPT [ARGS...]
#
# Runs SCRIPT (a path inside each tree, e.g. bench/channels.py) with ARGS in tree A, then in tree
# B, PAIRS times, on this checkout's .venv (PYTHON overrides it) with PYTHONPATH putting each tree's
# packages first (for the bench and the workers it starts), and this checkout's node_modules linked
# into a tree that has none. Prints the lines of each run that match the extended regex FILTER.
ab_alternate() {
  local a=$1 b=$2 pairs=$3 filter=$4 script=$5
  shift 5
  local here python tree round
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  python=${PYTHON:-$here/.venv/bin/python}
  for tree in "$a" "$b"; do
    [ -e "$tree/node_modules" ] || ln -s "$here/node_modules" "$tree/node_modules"
  done
  for round in $(seq "$pairs"); do
    for tree in "$a" "$b"; do
      echo "=== $tree round $round: $(uptime)"
      (cd "$tree" && PYTHONPATH="$(cd "$tree" && pwd)" timeout 1800 "$python" "$script" "$@" 2>&1 \
        | grep -E "$filter") || true
    done
  done
}
