# shellcheck shell=bash
# Sourced by the benches that set a command against the obvious
# alternative (bench/store, bench/remote). The two commands of a pair run
# alternately (A B A B ...), so a slow moment of the machine (writeback,
# another job) hits both alike, and the ratio reported is of their medians.
# Needs `runs` (pairs per comparison) set.

# Wall seconds of "$@".
timed() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null
	t1=$(date +%s%N)
	echo "scale=4; ($t1 - $t0) / 1000000000" | bc
}

# compare NAME_A NAME_B PREP_A CMD_A PREP_B CMD_B: one warm-up each, then
# `runs` alternating pairs, each command after its PREP (untimed); prints
# both medians, their ratio B/A and the load average, and leaves the ratio
# in pair_ratio.
compare() {
	local na=$1 nb=$2 pa=$3 ca=$4 pb=$5 cb=$6 i ta=() tb=() out
	eval "$pa"; eval "$ca" >/dev/null
	eval "$pb"; eval "$cb" >/dev/null
	for ((i = 0; i < ${runs:?}; i++)); do
		eval "$pa"; ta+=("$(timed bash -c "$ca")")
		eval "$pb"; tb+=("$(timed bash -c "$cb")")
	done
	out=$(python3 - "$na" "$nb" "${ta[*]}" "${tb[*]}" <<'PY'
import statistics, sys
na, nb = sys.argv[1], sys.argv[2]
a = [float(x) for x in sys.argv[3].split()]
b = [float(x) for x in sys.argv[4].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"  {na:22s} median {ma:.3f}s  (min {min(a):.3f}, max {max(a):.3f})")
print(f"  {nb:22s} median {mb:.3f}s  (min {min(b):.3f}, max {max(b):.3f})")
print(f"  ratio of medians {nb} / {na}: {mb / ma:.2f}x  "
      f"(per pair: {', '.join(f'{y / x:.2f}' for x, y in zip(a, b))})")
print(f"{mb / ma:.4f}")
PY
)
	printf '%s\n' "$out" | sed '$d'
	echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
	# shellcheck disable=SC2034 # read by the bench that sourced this
	pair_ratio=$(printf '%s\n' "$out" | tail -n1)
}
