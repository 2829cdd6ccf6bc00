#!/usr/bin/env bats
# Watching a run on a terminal: stages get a pseudo-terminal (so stdio a
# pipe would buffer comes line by line), a live status line per running
# stage that is erased at the end and on Ctrl-C, --progress plain and json,
# NO_COLOR. cpipe runs under real terminals: util-linux `script` for the
# bytes it writes, tmux for what the screen then shows.

load helpers

teardown() {
	[ -S "$BATS_TEST_TMPDIR/tmux.sock" ] && tmux -S "$BATS_TEST_TMPDIR/tmux.sock" kill-server 2>/dev/null
	cpipe down >/dev/null 2>&1 || true
	if [ -n "${DOCKER_PROJECT:-}" ]; then
		local id
		for id in $(project_containers); do
			docker_api -X DELETE "http://d/containers/$id?force=1" >/dev/null
		done
		for id in $(docker_api "http://d/networks?filters=$(project_filter)" | jq -r '.[].Id'); do
			docker_api -X DELETE "http://d/networks/$id" >/dev/null
		done
	fi
	true
}

# The Docker Engine API, and what this test's project ($DOCKER_PROJECT) has there.
docker_api() {
	local sock=${DOCKER_HOST:-unix:///var/run/docker.sock}
	curl -sS --unix-socket "${sock#unix://}" "$@"
}
project_filter() {
	printf '{"label":["com.cpipe.project=%s"]}' "$DOCKER_PROJECT" | jq -sRr @uri
}
project_containers() {
	docker_api "http://d/containers/json?all=1&filters=$(project_filter)" | jq -r '.[].Id'
}

# Runs the shell command line $1 under a pseudo-terminal; what the terminal
# received goes to stdout, carriage returns and all. Exits as $1 does.
in_pty() {
	TERM=${PTY_TERM:-xterm} script -qfec "$1" /dev/null < /dev/null
}

# Prefixes each line of stdin with the time it arrived (carriage return dropped).
stamp() {
	local line
	while IFS= read -r line; do
		printf '%s %s\n' "$(date +%s.%N)" "${line%$'\r'}"
	done
}

# The arrival time of the first line of stamped file $1 containing $2.
arrival() {
	awk -v pat="$2" 'index($0, pat) { print $1; exit }' "$1"
}

# Whether $2 arrived at least $3 seconds after $1.
later_by() {
	awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { exit !(a != "" && b != "" && b - a >= d) }'
}

# tmux on a socket of this test's own, a 120x30 screen running $1 in bash.
tmux_sock() { echo "$BATS_TEST_TMPDIR/tmux.sock"; }
tmux_start() {
	tmux -S "$(tmux_sock)" -f /dev/null new-session -d -x 120 -y 30 \
		"cd '$PROJ' && exec bash -c '$1; sleep 600'"
}
screen_text() {
	tmux -S "$(tmux_sock)" capture-pane -p
}
# Waits up to $2 seconds for the screen to match the extended regex $1.
wait_screen() {
	local i
	for ((i = 0; i < ${2:-10} * 10; i++)); do
		screen_text | grep -qE -- "$1" && return 0
		sleep 0.1
	done
	echo "--- screen ---" >&2
	screen_text >&2
	return 1
}

# Processes running the cpipe binary under test, not counting the sandbox
# inits it forks (whose parent is cpipe).
cpipe_pids() {
	local pid ppid exe
	exe=$(readlink -f "$CPIPE_BIN")
	for pid in $(pgrep -f cpipe); do
		[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] || continue
		ppid=$(awk '{ print $4 }' "/proc/$pid/stat" 2>/dev/null)
		[ "$(readlink "/proc/$ppid/exe" 2>/dev/null)" = "$exe" ] || echo "$pid"
	done
	true
}

# The screen once the run is over: every line is whole and one the run
# prints in plain mode (extended regex $1 for the whole line), no status
# line is left, and $2 is the last line. Leaves the screen in $output.
assert_final_screen() {
	local line
	run screen_text
	while IFS= read -r line; do
		[ -z "$line" ] || [[ "$line" =~ ^($1|$2)$ ]] || fail "left on the screen: \"$line\""
	done <<< "$output"
	[ "$(grep -v '^$' <<< "$output" | tail -1)" = "$2" ] || fail "the screen does not end with $2"
}

# The pid of the cpipe whose output (raw.txt) shows "long | started";
# fails the test after 30 s without.
cpipe_once_started() {
	local i pid=
	for ((i = 0; i < 300; i++)); do
		grep -qs "long | started" raw.txt && pid=$(cpipe_pids)
		[ -n "$pid" ] && echo "$pid" && return 0
		sleep 0.1
	done
	fail "cpipe did not start: $(cat -v raw.txt)"
}

buffered_spec() {
	spec <<'EOF'
stages:
  talk:
    command: python3 -c 'import time; print("first"); time.sleep(3); print("second")'
EOF
}

@test "under a terminal a job gets one: Python's buffered print arrives line by line (local)" {
	buffered_spec
	{ NO_COLOR=1 in_pty "$CPIPE_BIN run" && rc=0 || rc=$?; echo "rc=$rc"; } | stamp > pty.txt
	grep -q " rc=0$" pty.txt || fail "run failed: $(cat pty.txt)"
	later_by "$(arrival pty.txt 'talk | first')" "$(arrival pty.txt 'talk | second')" 2 ||
		fail "first did not arrive well before second: $(cat pty.txt)"
	# Both lines, nothing else of the terminal's (\r\n), in the stage's log.
	run cat .cpipe/logs/*/talk.log
	[ "$output" = $'first\nsecond' ] || fail "log file: $(od -c .cpipe/logs/*/talk.log | head)"
	# Through a pipe the same stage holds both lines until it exits: the
	# gap above is the terminal's doing.
	{ cpipe run --force 2>&1 && rc=0 || rc=$?; echo "rc=$rc"; } | stamp > pipe.txt
	grep -q " rc=0$" pipe.txt || fail "piped run failed: $(cat pipe.txt)"
	! later_by "$(arrival pipe.txt 'talk | first')" "$(arrival pipe.txt 'talk | second')" 1 ||
		fail "through a pipe the lines came apart; the test proves nothing: $(cat pipe.txt)"
}

@test "under a terminal a job's stdout and stderr are a terminal (not with -T), a detached service's are not" {
	spec <<'EOF'
stages:
  serve:
    service: true
    command: sh -c 'if [ -t 1 ]; then echo serve=tty; else echo serve=notty; fi; exec sleep 60'
  job:
    command: sh -c '[ -t 1 ] && [ -t 2 ] && echo "job=tty $$TERM $$(stty size <&2)" || echo job=notty'
    outputs: []
EOF
	NO_COLOR=1 run in_pty "stty rows 30 cols 100; $CPIPE_BIN run job"
	[ "$status" -eq 0 ] || fail "run exited $status"
	# The terminal's width less the "job | " prefix.
	assert_contains "job | job=tty xterm 30 94"
	# -T, as compose's: pipes, even on a terminal.
	NO_COLOR=1 run in_pty "$CPIPE_BIN run -T job"
	[ "$status" -eq 0 ] || fail "run -T exited $status"
	assert_contains "job | job=notty"
	run in_pty "$CPIPE_BIN up serve"
	[ "$status" -eq 0 ] || fail "up exited $status"
	run cat "$(jq -r .log .cpipe/services/serve.json)"
	[ "$output" = "serve=notty" ] || fail "the service's log"
	cpipe down
}

@test "under a terminal a job gets one on Docker: a C program's buffered printf arrives line by line" {
	"$BATS_TEST_DIRNAME/../docker-setup" >/dev/null 2>&1 || skip "docker unavailable"
	mkdir bin
	cat > buf.c <<'EOF'
#include <stdio.h>
#include <unistd.h>
int main(void)
{
	printf("first\n");
	sleep(3);
	printf("second\n");
	fprintf(stderr, "to stderr\n");
	return 3;
}
EOF
	gcc -static -O2 -o bin/buf buf.c
	DOCKER_PROJECT="cpt-progress-$$"
	spec <<EOF
name: $DOCKER_PROJECT
stages:
  c:
    image: cpipe-test/busybox:latest
    command: /opt/buf
    volumes: [./bin/buf:/opt/buf:ro]
EOF
	{ NO_COLOR=1 in_pty "$CPIPE_BIN --runtime docker run" && rc=0 || rc=$?; echo "rc=$rc"; } | stamp > pty.txt
	grep -q " rc=1$" pty.txt || fail "expected the stage's exit 3 to fail the run: $(cat pty.txt)"
	grep -q 'stage "c" failed with exit code 3' pty.txt || fail "exit code lost: $(cat pty.txt)"
	later_by "$(arrival pty.txt 'c | first')" "$(arrival pty.txt 'c | second')" 2 ||
		fail "first did not arrive well before second: $(cat pty.txt)"
	grep -q 'c | to stderr' pty.txt || fail "stderr lost: $(cat pty.txt)"
	# The container's terminal ends lines with \r\n; neither output nor log keeps the \r.
	run cat .cpipe/logs/*/c.log
	[ "$output" = $'first\nsecond\nto stderr' ] || fail "log file: $(od -c .cpipe/logs/*/c.log | head)"
	{ cpipe --runtime docker run 2>&1 && rc=0 || rc=$?; echo "rc=$rc"; } | stamp > pipe.txt
	! later_by "$(arrival pipe.txt 'c | first')" "$(arrival pipe.txt 'c | second')" 1 ||
		fail "through a pipe the lines came apart; the test proves nothing: $(cat pipe.txt)"
}

@test "Ctrl-C under a terminal on Docker: the container with a tty is stopped and removed, exit 130" {
	"$BATS_TEST_DIRNAME/../docker-setup" >/dev/null 2>&1 || skip "docker unavailable"
	DOCKER_PROJECT="cpt-progress-int-$$"
	spec <<EOF
name: $DOCKER_PROJECT
stages:
  long:
    image: cpipe-test/busybox:latest
    command: sh -c 'echo started; trap "echo stopping on TERM; exit 5" TERM; while :; do sleep 0.1; done'
EOF
	{ NO_COLOR=1 in_pty "$CPIPE_BIN --runtime docker run" && rc=0 || rc=$?; echo "rc=$rc"; } > raw.txt &
	local pid
	pid=$(cpipe_once_started) || return 1
	kill -INT "$pid"
	wait
	run tr -d '\r' < raw.txt
	assert_contains "long | stopping on TERM"
	assert_contains "rc=130"
	[ -z "$(project_containers)" ] || fail "a container of the run is left"
}

@test "the status line shows each running stage with its elapsed time and last line, and is gone at the end" {
	spec <<'EOF'
stages:
  prepare:
    command: sh -c 'echo preparing; sleep 2.5; echo prepared'
  train:
    command: sh -c 'echo "epoch 1"; sleep 2; printf "\033[1mepoch 2\033[0m\n"; sleep 1.5'
EOF
	tmux_start "\"$CPIPE_BIN\" run -j 2; echo EXIT=\$?"
	# Both stages, each on a line of its own below the logs.
	wait_screen '^[^ ]+ prepare +running +[0-9]+\.[0-9]s  preparing$' 5
	wait_screen '^[^ ]+ train +running +[0-9]+\.[0-9]s  epoch 1$' 5
	# The time goes on, the last line follows (its own colours dropped).
	wait_screen '^[^ ]+ train +running +[23]\.[0-9]s  epoch 2$' 5
	wait_screen '^EXIT=0$' 10
	# Nothing after the last log line and notes: the block was erased.
	assert_final_screen 'cpipe: running (prepare|train)|cpipe: (prepare|train) done \([0-9.]+s\)|prepare \| prepar(ing|ed)|train   \| epoch [12]' "EXIT=0"
	local want
	for want in "cpipe: running prepare" "cpipe: running train" "prepare | preparing" \
		"train   | epoch 1" "train   | epoch 2" "prepare | prepared" "cpipe: prepare done" \
		"cpipe: train done"; do
		assert_contains "$want"
	done
}

@test "the bytes after the last status line hold no escape sequence; NO_COLOR=1 means no colour at all" {
	spec <<'EOF'
stages:
  work:
    command: sh -c 'echo working; sleep 1; echo finished'
    outputs: []
EOF
	in_pty "$CPIPE_BIN run" > raw.txt
	grep -q $'\e\\[J' raw.txt || fail "no status block was drawn: $(cat -v raw.txt)"
	# What follows the last escape sequence is the run's end, in plain text.
	tail=$(awk 'BEGIN { RS = "\033" } END { print }' raw.txt | tr -d '\r')
	[[ "$tail" == *"cpipe: work done"* ]] || fail "after the last escape: $tail"
	[[ "$tail" != *running* ]] || fail "a status line is left: $tail"
	grep -q $'\e\\[36mwork |' raw.txt || fail "no coloured prefix without NO_COLOR: $(cat -v raw.txt)"
	NO_COLOR=1 in_pty "$CPIPE_BIN run" > raw.txt
	grep -q $'\e\\[J' raw.txt || fail "NO_COLOR also dropped the status block"
	! grep -qE $'\e\\[[0-9;]*m' raw.txt || fail "colour codes under NO_COLOR: $(cat -v raw.txt)"
	grep -q "work | finished" raw.txt || fail "plain prefix missing: $(cat -v raw.txt)"
}

@test "--progress plain under a terminal prints what a pipe gets, colours aside" {
	spec <<'EOF'
stages:
  one:
    command: sh -c 'echo alpha; sleep 0.5; echo beta'
    outputs: []
  two:
    command: sh -c 'echo gamma; exit 0'
    depends_on: [one]
    outputs: []
EOF
	norm() { tr -d '\r' | sed -E 's/\([0-9]+\.[0-9]+s\)/(T)/'; }
	cpipe run > piped.txt 2>&1
	norm < piped.txt > want.txt
	NO_COLOR=1 in_pty "$CPIPE_BIN run --progress plain" | norm > got.txt
	diff want.txt got.txt || fail "NO_COLOR plain under a terminal differs from the piped output"
	# With colour: the same text once the colour codes are taken out, and
	# no other escape sequence (no cursor movement).
	in_pty "$CPIPE_BIN run --progress plain" | norm > colour.txt
	grep -q $'\e\\[' colour.txt || fail "no colour on a terminal: $(cat -v colour.txt)"
	sed -E $'s/\e\\[[0-9;]*m//g' colour.txt > stripped.txt
	diff want.txt stripped.txt || fail "plain under a terminal has more than colours"
	! grep -q $'\e' stripped.txt || fail "escape sequences besides colours: $(cat -v stripped.txt)"
	# TERM=dumb makes auto plain too.
	PTY_TERM=dumb NO_COLOR=1 in_pty "$CPIPE_BIN run" | norm > dumb.txt
	diff want.txt dumb.txt || fail "auto with TERM=dumb is not plain"
}

@test "--progress json: one event a line, start and end with exit codes, skip and restore" {
	spec <<'EOF'
volumes:
  data: {}
stages:
  make:
    command: sh -c 'echo making; printf "bad \\377 byte\\n"; echo 1 > /data/x'
    volumes: [data:/data]
    outputs: [data:/x]
  check:
    command: sh -c 'echo "checking \"x\"" >&2; exit 3'
    depends_on: [make]
EOF
	run in_pty "$CPIPE_BIN run --progress json 2>/dev/null"
	[ "$status" -eq 1 ] || fail "expected exit 1 (check fails), got $status"
	tr -d '\r' <<< "$output" > events.jsonl
	# Every line is a JSON object with an event and the run, in strict
	# UTF-8 (Python's parser; jq would let bad bytes through).
	python3 -c '
import json, sys
for raw in open(sys.argv[1], "rb"):
    e = json.loads(raw)
    assert isinstance(e, dict) and isinstance(e["event"], str) and e["run"], raw
' events.jsonl || fail "not all lines are events: $(cat -v events.jsonl)"
	ev() { jq -r "$1" events.jsonl | paste -sd' ' -; }
	[ "$(ev 'select(.event == "start") | .stage')" = "make check" ] || fail "start events"
	[ "$(ev 'select(.event == "end") | "\(.stage):\(.state):\(.exit_code)"')" = "make:done:0 check:failed:3" ] ||
		fail "end events: $(ev 'select(.event == "end")')"
	# A byte that is not UTF-8 comes as U+FFFD, so the line is still JSON.
	[ "$(ev 'select(.event == "log") | .line')" = $'making bad \uFFFD byte checking "x"' ] ||
		fail "log events: $(ev 'select(.event == "log") | .line')"
	[ "$(ev 'select(.event == "run_end") | .status')" = "failed" ] || fail "run_end"
	[ "$(ev 'select(.event == "end" and .stage == "make") | .duration >= 0')" = "true" ] || fail "duration"
	run in_pty "$CPIPE_BIN run make --progress json 2>/dev/null"
	[ "$status" -eq 0 ] || fail "rerun exited $status"
	[ "$(tr -d '\r' <<< "$output" | jq -r 'select(.stage) | "\(.event):\(.stage)"')" = "skip:make" ] ||
		fail "expected only a skip event"
	rm "$(vol data)/x"
	run in_pty "$CPIPE_BIN run make --progress json 2>/dev/null"
	[ "$status" -eq 0 ] || fail "restore run exited $status"
	[ "$(tr -d '\r' <<< "$output" | jq -r 'select(.stage) | "\(.event):\(.stage)"')" = "restore:make" ] ||
		fail "expected only a restore event"
	run cpipe run --progress fancy
	[ "$status" -eq 2 ] || fail "a bad --progress must be a usage error"
	assert_contains "--progress fancy: expected auto, tty, plain or json"
}

@test "Ctrl-C at the terminal stops the stage, exits 130 and leaves the terminal clean" {
	spec <<'EOF'
stages:
  long:
    command: sh -c 'echo started; trap "echo stopping on TERM; exit 5" TERM; while :; do sleep 0.1; done'
EOF
	tmux_start "stty -g > before.stty; \"$CPIPE_BIN\" run; echo EXIT=\$?; stty -g > after.stty"
	wait_screen '^[^ ]+ long +running +[0-9.]+s  started$' 5
	tmux -S "$(tmux_sock)" send-keys C-c
	wait_screen '^EXIT=130$' 15
	assert_final_screen 'cpipe: running long|long \| (started|Terminated|stopping on TERM)|cpipe: interrupted.*|cpipe: long stopped \([0-9.]+s\)' "EXIT=130"
	assert_contains "long | stopping on TERM"
	assert_contains "cpipe: interrupted; every stage was stopped"
	wait_for_file after.stty 5
	cmp before.stty after.stty || fail "the terminal's settings changed"
	[ -z "$(procs_matching 'trap "echo stopping')" ] || fail "the stage outlived cpipe"
}

@test "kill -9 of cpipe under a terminal takes its stage with it" {
	spec <<'EOF'
stages:
  long:
    command: sh -c 'echo started; while :; do sleep 0.1; done' progress-kill9
EOF
	NO_COLOR=1 in_pty "$CPIPE_BIN run" > raw.txt &
	local i pid
	pid=$(cpipe_once_started) || return 1
	kill -9 "$pid"
	wait || true
	for ((i = 0; i < 100; i++)); do
		[ -z "$(procs_matching progress-kill9)" ] && break
		sleep 0.05
	done
	[ -z "$(procs_matching progress-kill9)" ] || fail "the stage outlived cpipe"
	# The next run finds nothing in the way.
	NO_COLOR=1 run in_pty "timeout 5 $CPIPE_BIN run --progress plain; true"
	assert_contains "long | started"
}
