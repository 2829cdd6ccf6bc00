# Shared by evloop.bats and evloop_docker.bats: when cpipe showed log lines.

# The largest gap, in ms, between consecutive "log" events of stage $1 in
# the --progress json events in $output (the times cpipe saw them).
max_log_gap() {
	jq -rR --arg s "$1" 'fromjson? | select(.event == "log" and .stage == $s) | .time' <<< "$output" |
		jq -sR 'split("\n") | map(select(length > 0)
			| (.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber))
			| [range(1; length) as $i | .[$i] - .[$i - 1]] | max // 0'
}

# How many "log" events stage $1 has in $output.
log_count() {
	jq -rR --arg s "$1" 'fromjson? | select(.event == "log" and .stage == $s) | .line' <<< "$output" | wc -l
}

# Stage ticker printed all of its $1 lines (one every 100 ms) and cpipe
# showed them with no gap of 1.5 s or more: nothing held the loop up.
assert_ticker_steady() {
	local gap
	[ "$(log_count ticker)" -eq "$1" ] || fail "ticker printed $(log_count ticker) lines, not $1"
	gap=$(max_log_gap ticker)
	[ "$gap" -lt 1500 ] || fail "ticker's lines stopped for $gap ms while the probe ran"
}
