#!/usr/bin/env bats
# The docker runtime when things go wrong: a daemon that accepts but never
# answers, one that dies or hangs mid-run (a dockerd of the test's own,
# never the shared one), a cpipe killed with SIGKILL, stop_grace_period
# honoured, containers removed after every run, status that neither
# builds nor pulls.
# engine: docker

load helpers
load docker_helpers

# docker_helpers' teardown removes the project from the shared daemon.
eval "$(declare -f teardown | sed '1s/teardown/project_teardown/')"

teardown() {
	[ -z "${HANG_PID:-}" ] || kill "$HANG_PID" 2> /dev/null || true
	[ -z "${OWN:-}" ] || own_dockerd_cleanup
	project_teardown
}

# Seconds since the epoch, with fractions.
now() { date +%s.%N; }
# $1 - $2 > $3 (or < with $4 = lt).
elapsed_gt() { awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { exit !(a - b > c) }'; }
elapsed_lt() { awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { exit !(a - b < c) }'; }

# A unix socket at $HANG_SOCK that accepts every connection and never
# answers, as a wedged daemon does.
hang_start() {
	HANG_SOCK="$BATS_TEST_TMPDIR/hang.sock"
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(64)
held = []
while True:
    held.append(s.accept()[0])
' "$HANG_SOCK" &
	HANG_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		[ -S "$HANG_SOCK" ] && return 0
		sleep 0.05
	done
	fail "the hanging socket did not appear"
}

# A dockerd of this test's own (its own data, exec root, socket, default
# bridge, no iptables), which the test may stop or kill. Not --bridge=none:
# a dockerd without a default bridge deletes the host's docker0, which the
# shared daemon uses. The bridge gets a /24 no route uses. The unix socket
# path must stay short, hence /tmp.
own_dockerd_start() {
	OWN=$(mktemp -d /tmp/cpipe-own.XXXXXX)
	OWN_SOCK="$OWN/sock"
	OWN_BRIDGE="cpo${OWN##*.}"
	local n
	for ((n = 0; n < 50; n++)); do
		OWN_NET="10.$((100 + RANDOM % 100)).$((RANDOM % 250))"
		ip route | grep -q "^$OWN_NET\." || ip route | grep -qE "^10\.[0-9.]+/(8|9|1[0-5]) " || break
	done
	ip link add name "$OWN_BRIDGE" type bridge || fail "cannot create bridge $OWN_BRIDGE"
	echo "$OWN_BRIDGE" > "$OWN/own-bridge"
	ip addr add "$OWN_NET.1/24" dev "$OWN_BRIDGE" && ip link set "$OWN_BRIDGE" up ||
		fail "cannot configure bridge $OWN_BRIDGE"
	setsid dockerd --data-root "$OWN/d" --exec-root "$OWN/e" --pidfile "$OWN/pid" \
		-H "unix://$OWN_SOCK" --bridge="$OWN_BRIDGE" --iptables=false --ip-masq=false \
		--userland-proxy=false > "$OWN/log" 2>&1 < /dev/null &
	local i
	for ((i = 0; i < 300; i++)); do
		curl -sf -m 1 --unix-socket "$OWN_SOCK" http://d/_ping > /dev/null 2>&1 && break
		sleep 0.1
	done
	curl -sf -m 1 --unix-socket "$OWN_SOCK" http://d/_ping > /dev/null 2>&1 ||
		{ output=$(tail -20 "$OWN/log"); fail "our own dockerd did not start"; }
	# Only now: docker-setup starts a daemon itself when none answers.
	DOCKER_HOST="unix://$OWN_SOCK" "$BATS_TEST_DIRNAME/../docker-setup" > /dev/null ||
		fail "importing the test image into our own dockerd failed"
}

own_api() { curl -sS -m 5 --unix-socket "$OWN_SOCK" "$@"; }

# Remembers the bridges of our daemon's networks: a killed daemon leaves
# them on the host.
own_note_networks() {
	own_api http://d/networks | jq -r '.[] | select(.Driver == "bridge") | .Id[0:12]' >> "$OWN/bridges"
}

own_dockerd_cleanup() {
	local pid i p c
	pid=$(cat "$OWN/pid" 2> /dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2> /dev/null; then
		kill -CONT "$pid" 2> /dev/null || true
		own_note_networks 2> /dev/null || true
		for c in $(own_api "http://d/containers/json?all=1" 2> /dev/null | jq -r '.[].Id'); do
			own_api -X DELETE "http://d/containers/$c?force=1" > /dev/null 2>&1 || true
		done
		kill -TERM "$pid" 2> /dev/null || true
		for ((i = 0; i < 150; i++)); do
			kill -0 "$pid" 2> /dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2> /dev/null || true
	fi
	# What a killed daemon leaves: its containerd and the shims, each
	# with the container it runs. Only processes naming our directory.
	for p in $(grep -lsF "$OWN" /proc/[0-9]*/cmdline | cut -d/ -f3); do
		[ "$p" = "$$" ] && continue
		for c in $(ps -o pid= --ppid "$p" 2> /dev/null); do kill -KILL "$c" 2> /dev/null || true; done
		kill -KILL "$p" 2> /dev/null || true
	done
	sleep 0.2
	grep -F "$OWN" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2> /dev/null || true
	for i in $(sort -u "$OWN/bridges" 2> /dev/null); do
		ip link delete "br-$i" 2> /dev/null || true
	done
	[ ! -e "$OWN/own-bridge" ] || ip link delete "$(cat "$OWN/own-bridge")" 2> /dev/null || true
	rm -rf "$OWN"
	OWN=
}

# A job that runs until stopped, on the given daemon.
sleeper_spec() {
	spec <<EOF
name: $P
stages:
  nap:
    image: cpipe-test/busybox
    command: sh -c 'echo napping; sleep 30'
EOF
}

# Waits until $1 (an api function) lists a running container of $P.
wait_running() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$("$1" "http://d/containers/json?filters=$(filter "com.cpipe.project=$P")" | jq length)" -ge 1 ] && return 0
		sleep 0.1
	done
	return 1
}

# On a dockerd of our own, a job runs in the background (cpipe's pid in
# $pid, environment assignments in "$@"); returns once its container runs.
own_dockerd_run() {
	command -v dockerd > /dev/null || skip "dockerd is needed"
	[ "$(id -u)" -eq 0 ] || skip "our own dockerd needs root"
	own_dockerd_start
	sleeper_spec
	env DOCKER_HOST="unix://$OWN_SOCK" "$@" timeout -k 30 60 "$CPIPE_BIN" --runtime docker run \
		> "$BATS_TEST_TMPDIR/out" 2>&1 &
	pid=$!
	wait_running own_api || { kill "$pid"; fail "the job never ran"; }
	own_note_networks
}

@test "a daemon that accepts and never answers: run, ps and volume ls exit 3 naming the socket" {
	command -v python3 > /dev/null || skip "python3 is needed"
	hang_start
	sleeper_spec
	local t0 t1
	# (timeout -k: the command must not outlive a test that failed.)
	# CPIPE_DOCKER_TIMEOUT shortens the answer window; ps keeps the default.
	t0=$(now)
	run env DOCKER_HOST="unix://$HANG_SOCK" CPIPE_DOCKER_TIMEOUT=2 timeout -k 30 30 "$CPIPE_BIN" --runtime docker run
	t1=$(now)
	[ "$status" -eq 3 ] || fail "run: expected exit 3, got $status"
	assert_contains "$HANG_SOCK"
	assert_contains "did not answer"
	elapsed_lt "$t1" "$t0" 10 || fail "run took $t0 → $t1"

	run env DOCKER_HOST="unix://$HANG_SOCK" CPIPE_DOCKER_TIMEOUT=2 timeout -k 30 30 "$CPIPE_BIN" --runtime docker volume ls
	[ "$status" -eq 3 ] || fail "volume ls: expected exit 3, got $status"
	assert_contains "$HANG_SOCK"

	run env DOCKER_HOST="unix://$HANG_SOCK" timeout -k 30 30 "$CPIPE_BIN" --runtime docker ps
	[ "$status" -eq 3 ] || fail "ps: expected exit 3 within the default 20s, got $status"
	assert_contains "$HANG_SOCK"
	assert_contains "within 20.0s"
}

@test "dockerd killed mid-run: exit 3 naming its socket" {
	own_dockerd_run
	local rc=0
	kill -KILL "$(cat "$OWN/pid")"
	wait "$pid" || rc=$?
	output=$(cat "$BATS_TEST_TMPDIR/out")
	[ "$rc" -eq 3 ] || fail "expected exit 3, got $rc"
	assert_contains "cannot connect to the Docker daemon at unix://$OWN_SOCK"
}

@test "Ctrl-C while dockerd hangs mid-run: cpipe still ends, exit 130, naming the socket" {
	own_dockerd_run CPIPE_DOCKER_TIMEOUT=2
	local rc=0 t0 t1
	kill -STOP "$(cat "$OWN/pid")"
	t0=$(now)
	kill -INT "$pid"
	wait "$pid" || rc=$?
	t1=$(now)
	kill -CONT "$(cat "$OWN/pid")"
	output=$(cat "$BATS_TEST_TMPDIR/out")
	[ "$rc" -eq 130 ] || fail "expected exit 130, got $rc"
	assert_contains "unix://$OWN_SOCK did not answer"
	elapsed_lt "$t1" "$t0" 30 || fail "took $t0 → $t1"
}

@test "after kill -9 of cpipe, the next run removes its container; a service left up stays" {
	spec <<EOF
name: $P
stages:
  svc:
    image: cpipe-test/busybox
    service: true
    command: sleep 300
  nap:
    image: cpipe-test/busybox
    command: sh -c 'echo napping; sleep 30'
  quick:
    image: cpipe-test/busybox
    command: echo quick
EOF
	run dcpipe up svc
	[ "$status" -eq 0 ] || fail "up failed"
	local svc
	svc=$(jq -r .handle.container .cpipe/services/svc.json)

	"$CPIPE_BIN" --runtime docker run nap > "$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$!
	local f
	f=$(filter "com.cpipe.stage=nap")
	for ((i = 0; i < 200; i++)); do
		[ "$(api "http://d/containers/json?filters=$f" | jq --arg p "$P" '[.[] | select(.Labels["com.cpipe.project"] == $p)] | length')" -ge 1 ] && break
		sleep 0.1
	done
	kill -KILL "$pid"
	wait "$pid" || true
	local left
	left=$(api "http://d/containers/json?all=1&filters=$f" | jq -r --arg p "$P" '.[] | select(.Labels["com.cpipe.project"] == $p) | .Id')
	[ -n "$left" ] || fail "no container was left behind to clean up (the test proves nothing)"
	api "http://d/containers/$left/json" | jq -e '.Config.Labels["com.cpipe.owner"] | test("/[0-9]+/[0-9]+$")' > /dev/null ||
		fail "the container carries no owner label"

	run dcpipe run quick
	[ "$status" -eq 0 ] || fail "the next run failed"
	assert_contains "removed 1 container left by a cpipe that is gone"
	[ "$(api -o /dev/null -w '%{http_code}' "http://d/containers/$left/json")" = 404 ] ||
		fail "the dead run's container is still there"
	api "http://d/containers/$svc/json" | jq -e '.State.Running' > /dev/null ||
		fail "the service cpipe up left running was touched"
}

@test "down removes a dead cpipe's container, and down -v the project network" {
	# A published port gives the project a network (jobs alone use the
	# default bridge).
	spec <<EOF
name: $P
stages:
  nap:
    image: cpipe-test/busybox
    command: sh -c 'echo napping; sleep 30'
    service: false
    ports: ["127.0.0.1::8080"]
EOF
	"$CPIPE_BIN" --runtime docker run > "$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$!
	wait_running api || { kill "$pid"; fail "the job never ran"; }
	kill -KILL "$pid"
	wait "$pid" || true
	[ -n "$(project_containers)" ] || fail "no container was left behind"
	api "http://d/networks/${P}_default" | jq -e .Id > /dev/null || fail "no project network"
	run dcpipe down -v
	[ "$status" -eq 0 ] || fail "down failed"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
	[ "$(api -o /dev/null -w '%{http_code}' "http://d/networks/${P}_default")" = 404 ] ||
		fail "network ${P}_default left behind"
}

@test "status neither builds nor pulls: an absent image is a reason, quickly" {
	mkdir ctx
	printf 'FROM cpipe-test/busybox\nRUN echo built > /b\n' > ctx/Dockerfile
	spec <<EOF
name: $P
stages:
  built:
    build: ctx
    command: cat /b
  pulled:
    image: cpipe-test/absent-$P:v1
    command: "true"
EOF
	local since t0 t1
	since=$(date +%s)
	t0=$(now)
	run dcpipe status
	t1=$(now)
	[ "$status" -eq 0 ] || fail "status failed"
	assert_line_re "^built +stale +image not built yet"
	assert_contains "image cpipe-test/absent-$P:v1 not pulled yet"
	elapsed_lt "$t1" "$t0" 5 || fail "status took $t0 → $t1"
	[ "$(api -o /dev/null -w '%{http_code}' "http://d/images/$P-built:latest/json")" = 404 ] ||
		fail "status built an image"
	local ev
	ev=$(api "http://d/events?since=$since&until=$(($(date +%s) + 1))&filters=$(printf '{"type":["image"]}' | jq -sRr @uri)" |
		jq -r --arg p "$P" 'select((.id // "") + (.Actor.Attributes.name // "") | contains($p)) | .Action')
	[ -z "$ev" ] || fail "status made image events: $ev"
	run dcpipe status --check
	[ "$status" -eq 1 ] || fail "status --check: expected 1 (stale), got $status"
}

# Ctrl-C to a run whose job ignores SIGTERM (sleep as PID 1 has no
# handler, so the kernel drops it); seconds from SIGINT to exit in $took.
interrupt_stubborn() {
	spec <<EOF
name: $P
stages:
  stubborn:
    image: cpipe-test/busybox
    command: sleep 60
    stop_grace_period: $1
EOF
	"$CPIPE_BIN" --runtime docker run > "$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$! rc=0 t0 t1
	wait_running api || { kill "$pid"; fail "the job never ran"; }
	t0=$(now)
	kill -INT "$pid"
	wait "$pid" || rc=$?
	t1=$(now)
	output=$(cat "$BATS_TEST_TMPDIR/out")
	[ "$rc" -eq 130 ] || fail "expected exit 130, got $rc"
	took=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "stop_grace_period: 1s kills a job that ignores SIGTERM after about a second, not ten" {
	interrupt_stubborn 1s
	assert_contains "stubborn did not stop in time, killing it"
	elapsed_lt "$took" 0 6 || fail "stopping took ${took}s"
}

@test "stop_grace_period: 3s waits the three seconds before killing" {
	interrupt_stubborn 3s
	elapsed_gt "$took" 0 2.5 || fail "stopping took only ${took}s"
	elapsed_lt "$took" 0 9 || fail "stopping took ${took}s"
}

@test "down stops a service that ignores SIGTERM after its stop_grace_period" {
	spec <<EOF
name: $P
stages:
  svc:
    image: cpipe-test/busybox
    service: true
    command: sleep 300
    stop_grace_period: 1s
EOF
	run dcpipe up svc
	[ "$status" -eq 0 ] || fail "up failed"
	local t0 t1
	t0=$(now)
	run dcpipe down
	t1=$(now)
	[ "$status" -eq 0 ] || fail "down failed"
	elapsed_lt "$t1" "$t0" 6 || fail "down took $t0 → $t1"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "no container of the project remains after a run, whether it succeeded or failed" {
	spec <<EOF
name: $P
stages:
  a: {image: cpipe-test/busybox, command: echo a}
  b: {image: cpipe-test/busybox, command: echo b, depends_on: [a]}
  c: {image: cpipe-test/busybox, command: echo c}
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	[ -z "$(project_containers)" ] || fail "after success: containers left: $(project_containers)"
	spec <<EOF
name: $P
stages:
  a: {image: cpipe-test/busybox, command: echo a}
  bad: {image: cpipe-test/busybox, command: sh -c 'exit 3', depends_on: [a]}
  c: {image: cpipe-test/busybox, command: sleep 5}
EOF
	run dcpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	[ -z "$(project_containers)" ] || fail "after failure: containers left: $(project_containers)"
}
