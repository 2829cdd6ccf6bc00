#!/usr/bin/env bats
# The executor's loop on the Engine API runtimes: a health-check command
# (the exec API) that takes its time holds up no other stage's lines, and
# Ctrl-C stops an image build under way at once, leaving nothing behind.

load helpers
load docker_helpers
load evloop_helpers

# cpipe processes working in this test's project.
cpipes_in_project() {
	local d bin
	bin=$(readlink -f "$CPIPE_BIN")
	for d in /proc/[0-9]*; do
		[ "$(readlink "$d/cwd" 2>/dev/null)" = "$PROJ" ] &&
			[ "$(readlink "$d/exe" 2>/dev/null)" = "$bin" ] && echo "${d#/proc/}"
	done
	return 0
}

@test "a health-check command (exec API) killed at its 3 s timeout does not delay another stage's lines" {
	spec <<EOF
name: $P
stages:
  slowcheck:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'trap "exit 0" TERM; sleep 600 & wait'
    healthcheck:
      test: ["CMD-SHELL", "sleep 5.062"]
      timeout: 3s
      interval: 100ms
      retries: 100
  ticker:
    image: cpipe-test/busybox
    command: sh -c 'for i in \$\$(seq 50); do echo tick \$\$i; sleep 0.1; done'
EOF
	run dcpipe run --progress json slowcheck ticker
	[ "$status" -eq 0 ] || fail "run failed ($status)"
	assert_ticker_steady 50
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

# The image $P-app:latest, as the engine lists it ("[]" when absent).
app_images() {
	api "http://d/images/json?filters=$(printf '{"reference":["%s"]}' "$P-app" | jq -sRr @uri)"
}

# Interrupts `cpipe $1` in the RUN step of the build it starts and checks
# what a user would: exit 130 within 2 s, nothing of the build left.
interrupt_build() {
	local verb=$1
	# A step whose process the test can find by its unique command line.
	# Podman (4.3) gives up a build whose client left only once the step
	# under way ends, so there it is short and waited for.
	local secs=97
	[ "$RT" = podman ] && secs=6
	step="sleep $secs.$RANDOM"
	cat > Dockerfile <<EOF
FROM cpipe-test/busybox:latest
RUN $step
EOF
	spec <<EOF
name: $P
stages:
  app:
    build: .
    image: $P-app:latest
    command: echo never-ran
EOF
	"$CPIPE_BIN" --runtime "$RT" "$verb" > out.log 2>&1 &
	local pid=$! i
	for ((i = 0; i < 300; i++)); do
		[ -n "$(procs_matching "$step")" ] && break
		sleep 0.1
	done
	output=$(cat out.log)
	[ -n "$(procs_matching "$step")" ] || { kill -INT "$pid"; wait "$pid"; fail "the build step never ran"; }
	local t0 rc=0 ms
	t0=$(now_ms)
	kill -INT "$pid"
	wait "$pid" || rc=$?
	ms=$(($(now_ms) - t0))
	output=$(cat out.log)
	[ "$rc" -eq 130 ] || fail "expected exit 130, got $rc"
	[ "$ms" -lt 2000 ] || fail "cpipe took $ms ms to stop"
	refute_contains "never-ran"
	[ -z "$(cpipes_in_project)" ] || fail "cpipe processes left: $(cpipes_in_project)"
	if [ "$RT" = podman ]; then
		for ((i = 0; i < 150; i++)); do
			[ -z "$(procs_matching "$step")" ] && break
			sleep 0.1
		done
		sleep 1 # past the end of the step: the build would go on and tag now
	fi
	[ -z "$(procs_matching "$step")" ] || fail "the build step is still running"
	[ "$(api "http://d/containers/json?all=1" | jq --arg s "$step" '[.[] | select(.Command | contains($s))] | length')" -eq 0 ] ||
		fail "the build's container was left behind"
	[ "$(app_images | jq length)" -eq 0 ] || fail "the image was tagged"
}

@test "Ctrl-C during an image build of a run exits 130 within 2 s and leaves no build container, image or process" {
	interrupt_build run
}

@test "Ctrl-C during cpipe build exits 130 within 2 s and leaves no build container, image or process" {
	interrupt_build build
}
