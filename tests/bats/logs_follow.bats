#!/usr/bin/env bats
# `cpipe logs -f [STAGE]` on the local runtime: follows a running service
# (option before or after the stage), a job of a run going on in another
# shell (until that job ends), every stage at once, and stops at once when
# nothing runs.

load helpers

follow_spec() {
	spec <<'EOF2'
stages:
  serve:
    service: true
    command: sh -c 'i=0; while :; do i=$$((i+1)); echo "beat $$i"; sleep 0.2; done'
  job:
    command: sh -c 'for i in 1 2 3 4 5; do echo tick $$i; sleep 0.4; done'
EOF2
}

teardown() {
	cpipe down >/dev/null 2>&1 || true
}

# Lines serve has written to its log so far.
serve_lines() {
	grep -c beat "$(jq -r .log .cpipe/services/serve.json)"
}

# Starts `cpipe run ARGS` (default: job) in the background and waits for
# the job's first tick.
start_job() {
	cpipe run "${@:-job}" > run.out 2>&1 &
	JOB_PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		grep -qs "tick 1" .cpipe/logs/*/job.log && return 0
		sleep 0.05
	done
	fail "the job never started: $(cat run.out)"
}

# Follows serve with the arguments given for 3 s: ended by the timeout, not
# at once, and showing lines written after it started.
follow_serve() {
	follow_spec
	cpipe up serve >/dev/null 2>&1 || fail "up failed"
	sleep 0.5
	local before
	before=$(serve_lines)
	run timeout 3 "$CPIPE_BIN" logs "$@"
	[ "$status" -eq 124 ] || fail "logs $* exited by itself with $status"
	local got
	got=$(grep -c "serve | beat" <<< "$output")
	[ "$got" -ge 2 ] || fail "only $got lines followed"
	[ "$got" -gt "$before" ] || fail "$got lines followed, the log had $before already"
}

@test "logs -f SERVICE follows a running service until interrupted" {
	follow_serve -f serve
}

@test "logs SERVICE -f follows too: the option after the stage" {
	follow_serve serve -f
}

@test "logs -f JOB follows the job of a run going on elsewhere and exits 0 when it ends" {
	follow_spec
	start_job
	run timeout 15 "$CPIPE_BIN" logs -f job
	wait "$JOB_PID" || fail "the run failed: $(cat run.out)"
	[ "$status" -eq 0 ] || fail "logs -f job exited $status"
	assert_contains "job | tick 1"
	assert_contains "job | tick 5"
}

@test "logs JOB -f follows the job too" {
	follow_spec
	start_job
	run timeout 15 "$CPIPE_BIN" logs job -f
	wait "$JOB_PID" || fail "the run failed"
	[ "$status" -eq 0 ] || fail "logs job -f exited $status"
	assert_contains "job | tick 5"
}

@test "logs -f with no stage follows the running services, lines prefixed" {
	follow_serve -f
}

@test "logs -f with no stage follows the running run to its end" {
	follow_spec
	start_job
	run timeout 15 "$CPIPE_BIN" logs -f
	wait "$JOB_PID" || fail "the run failed"
	[ "$status" -eq 0 ] || fail "logs -f exited $status"
	assert_contains "job   | tick 5"
}

@test "logs -f with nothing running prints the last run's logs and exits" {
	follow_spec
	cpipe run job >/dev/null 2>&1 || fail "run failed"
	run timeout 5 "$CPIPE_BIN" logs -f
	[ "$status" -eq 0 ] || fail "logs -f exited $status"
	assert_contains "job   | tick 5"
	run timeout 5 "$CPIPE_BIN" logs -f job
	[ "$status" -eq 0 ] || fail "logs -f job exited $status"
	assert_contains "job | tick 5"
}

@test "logs -f JOB exits when that job ends, while the run goes on" {
	spec <<'EOF2'
stages:
  job:
    command: sh -c 'for i in 1 2 3; do echo tick $$i; sleep 0.3; done'
  after:
    command: sleep 6
    depends_on: [job]
EOF2
	start_job after
	run timeout 15 "$CPIPE_BIN" logs -f job
	[ "$status" -eq 0 ] || fail "logs -f job exited $status"
	assert_contains "job | tick 3"
	kill -0 "$JOB_PID" 2>/dev/null || fail "logs -f job waited for the whole run"
	wait "$JOB_PID" || fail "the run failed: $(cat run.out)"
}

@test "logs -f masks a secret the followed service writes" {
	spec <<'EOF2'
stages:
  svc:
    service: true
    command: sh -c 'while :; do echo "svc got ${HOST_API_TOKEN}"; sleep 0.2; done'
EOF2
	HOST_API_TOKEN=tok-follow-a1b2c3d4 cpipe up svc >/dev/null 2>&1 || fail "up failed"
	HOST_API_TOKEN=tok-follow-a1b2c3d4 run timeout 2 "$CPIPE_BIN" logs -f
	[ "$status" -eq 124 ] || fail "logs -f exited by itself with $status"
	assert_contains "svc | svc got <redacted>"
	refute_contains "tok-follow-a1b2c3d4"
}
