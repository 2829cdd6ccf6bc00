# Shared set-up for the end-to-end tests: each test gets a fresh project
# directory and `cpipe` runs the binary under test ($CPIPE_BIN).

setup() {
	PROJ="$BATS_TEST_TMPDIR/proj"
	mkdir -p "$PROJ"
	cd "$PROJ" || return 1
}

cpipe() {
	"$CPIPE_BIN" "$@"
}

# Writes stdin to cpipe.yml in the project.
spec() {
	cat > "$PROJ/cpipe.yml"
}

# Fails the test with the output shown, for assertions in plain bash.
fail() {
	echo "$*" >&2
	echo "--- output ---" >&2
	echo "${output:-}" >&2
	return 1
}

# Runs cpipe with `run` and fails the test unless it exited 0.
run_ok() {
	run cpipe "$@"
	[ "$status" -eq 0 ] || fail "cpipe $* exited $status"
}

assert_contains() {
	[[ "$output" == *"$1"* ]] || fail "expected output to contain: $1"
}

refute_contains() {
	[[ "$output" != *"$1"* ]] || fail "expected output not to contain: $1"
}

# Processes (outside this shell) whose command line contains $1.
procs_matching() {
	local pat=$1 pid
	for pid in $(pgrep -f -- "$pat"); do
		[ "$pid" = "$$" ] && continue
		tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pat" && echo "$pid"
	done
}

# Waits up to $2 seconds (default 10) for file $1 to exist.
wait_for_file() {
	local i
	for ((i = 0; i < ${2:-10} * 20; i++)); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# Wall-clock milliseconds, for the generous bounds some tests state.
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

vol() {
	echo "$PROJ/.cpipe/volumes/$1"
}

# A free TCP port on 127.0.0.1.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		port_closed "$p" && echo "$p" && return
	done
}

# Nothing listens on $1 any more.
port_closed() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The runtime's warning $2 about stage $1, given by `$3 run` (cpipe or
# dcpipe): once on stderr, a single warning event with --progress json and
# no raw text beside it, and in the stage's entry of the run record.
assert_runtime_warning() {
	local stage=$1 want=$2 cmd=$3
	$cmd run > out 2> err || fail "run failed: $(cat err)"
	[ "$(grep -cF "cpipe: warning: $want" err)" = 1 ] || fail "not once on stderr: $(cat err)"
	! grep -qF "$want" out || fail "the warning is on stdout: $(cat out)"
	$cmd run --force --progress json > events 2> err || fail "json run failed: $(cat err)"
	jq -e . events > /dev/null || fail "not all lines are JSON: $(cat events)"
	[ "$(jq -r 'select(.event == "warning") | "\(.stage): \(.message)"' events)" = "$stage: $want" ] ||
		fail "no single warning event: $(cat events)"
	! grep -qF "$want" err || fail "raw warning text beside the JSON events: $(cat err)"
	run $cmd --json show latest
	[ "$status" -eq 0 ] || fail "show latest exited $status"
	[ "$(jq -c --arg s "$stage" '.stages[] | select(.name == $s) | .warnings' <<< "$output")" = \
		"$(jq -cn --arg w "$want" '[$w]')" ] || fail "the record's stage $stage lacks the warning"
}
