#!/usr/bin/env bats
# The executor's one event loop: health probes in flight (an http probe a
# server stalls, a health-check command that takes its time) never hold up
# another stage's log lines.

load helpers
load evloop_helpers

@test "an http probe the service stalls for 5 s does not delay another stage's lines" {
	port=$(free_port)
	# The service accepts the probe's connection and never answers: the
	# probe runs into its 5 s timeout; the server says when it let go.
	spec <<EOF
stages:
  stall:
    service: true
    command: sh -c 'while :; do busybox nc -l -p $port -e sleep 6; echo probe-closed; done'
    ports: ["$port:$port"]
    healthcheck: {http: "http://127.0.0.1:$port/", timeout: 5s, interval: 100ms, retries: 100}
  ticker:
    command: sh -c 'for i in \$\$(seq 70); do echo tick \$\$i; sleep 0.1; done'
EOF
	run cpipe run --progress json stall ticker
	[ "$status" -eq 0 ] || fail "run failed ($status)"
	[[ "$output" == *'"line":"probe-closed"'* ]] || fail "no probe stalled on the service"
	# A probe blocking the loop would show a gap of ~5000 ms.
	assert_ticker_steady 70
}

@test "a health-check command killed at its 3 s timeout does not delay another stage's lines" {
	spec <<'EOF'
stages:
  slowcheck:
    service: true
    command: sleep 6061
    healthcheck:
      test: ["CMD-SHELL", "sleep 5.061"]
      timeout: 3s
      interval: 100ms
      retries: 100
  ticker:
    command: sh -c 'for i in $$(seq 50); do echo tick $$i; sleep 0.1; done'
EOF
	run cpipe run --progress json slowcheck ticker
	[ "$status" -eq 0 ] || fail "run failed ($status)"
	assert_ticker_steady 50
	[ -z "$(procs_matching 'sleep 6061')" ] || fail "the service was left running"
	[ -z "$(procs_matching 'sleep 5.061')" ] || fail "a timed-out check was left running"
}
