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
