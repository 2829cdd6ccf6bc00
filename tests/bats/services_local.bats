#!/usr/bin/env bats
# Services on the local runtime: health-gated runs, up/ps/logs/down from
# separate invocations, port conflicts, --keep-serving, Ctrl-C.

load helpers

# A tiny HTTP server (busybox httpd) that only comes up after $2 seconds.
service_spec() {
	local port=$1 delay=${2:-1}
	mkdir -p www
	echo "model-v1" > www/index.html
	spec <<EOF
volumes:
  work: {}
stages:
  serve:
    service: true
    command: sh -c 'sleep $delay; exec busybox httpd -f -p 127.0.0.1:$port -h /www'
    volumes: ["./www:/www:ro"]
    inputs: [./www]
    ports: ["$port:$port"]
    healthcheck:
      http: http://127.0.0.1:$port/index.html
      interval: 200ms
      retries: 50
  infer:
    command: sh -c 'busybox wget -q -O - http://serve:$port/index.html && busybox wget -q -O - http://127.0.0.1:$port/index.html > /work/out.txt'
    volumes: [work:/work]
    depends_on:
      serve: {condition: service_healthy}
    outputs: [work:/out.txt]
EOF
}

@test "a service that becomes healthy late gates a job that calls it by name and by 127.0.0.1" {
	port=$(free_port)
	service_spec "$port" 1
	run cpipe run infer
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "starting service serve"
	assert_contains "serve is healthy"
	assert_contains "infer | model-v1"
	[ "$(cat "$(vol work)/out.txt")" = "model-v1" ]
	# The run started serve, so the run stopped it.
	assert_contains "serve stopped"
	port_closed "$port" || fail "serve still listening after the run"
	[ ! -e .cpipe/services/serve.json ] || fail "state of a stopped service left behind"
	jq -e '[.stages[] | select(.name == "serve")][0].inputs["./www"].digest | startswith("sha256:")' \
		"$(ls .cpipe/runs/*.json | tail -1)" >/dev/null || fail "record does not list what serve served"
}

@test "a job that is up to date does not start the service" {
	port=$(free_port)
	service_spec "$port" 0
	cpipe run infer >/dev/null 2>&1
	run cpipe run infer
	[ "$status" -eq 0 ] || fail "second run failed"
	assert_contains "infer is up to date, skipped"
	refute_contains "starting service serve"
}

@test "a service that never becomes healthy fails the run with its log" {
	port=$(free_port)
	spec <<EOF
stages:
  serve:
    service: true
    command: sh -c 'echo "loading model..."; echo "model file is corrupt" >&2; sleep 301.25'
    ports: ["$port:$port"]
    healthcheck: {http: "http://127.0.0.1:$port/", interval: 100ms, retries: 5}
  infer:
    command: echo never
    depends_on: {serve: {condition: service_healthy}}
EOF
	run cpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains 'service "serve" did not become healthy after 5 checks'
	assert_contains "model file is corrupt"
	refute_contains "infer | never"
	# A sleep of its own: other projects on the machine may run "sleep 300".
	[ -z "$(procs_matching 'sleep 301.25')" ] || fail "the unhealthy service was left running"
}

@test "a compose CMD-SHELL healthcheck runs inside the sandbox" {
	spec <<'EOF'
stages:
  serve:
    service: true
    command: sh -c 'sleep 0.5; touch /tmp/ready-$$CPIPE_RUN_ID; sleep 300'
    healthcheck:
      test: ["CMD-SHELL", "test -e /tmp/ready-$$CPIPE_RUN_ID"]
      interval: 100ms
      retries: 40
  job:
    command: echo ran-after-healthy
    depends_on: {serve: {condition: service_healthy}}
EOF
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "serve is healthy"
	assert_contains "job   | ran-after-healthy"
	rm -f /tmp/ready-*
}

@test "up, ps, logs -f and down work from separate shells" {
	port=$(free_port)
	service_spec "$port" 0
	run cpipe up
	[ "$status" -eq 0 ] || fail "up failed"
	assert_contains "serve is healthy"
	curl -fsS "http://127.0.0.1:$port/index.html" | grep -q model-v1 || fail "not serving after up returned"
	run cpipe ps
	[ "$status" -eq 0 ] || fail "ps failed"
	[[ "$output" == *"serve"*"running"*"healthy"*"127.0.0.1:$port->$port/tcp"* ]] || fail "ps line"
	run cpipe ps --json
	[ "$status" -eq 0 ] || fail "ps --json failed"
	echo "$output" | jq -e '.[0].stage == "serve" and .[0].state == "running" and .[0].ports[0].host_port == '"$port" >/dev/null || fail "ps json"
	curl -fsS "http://127.0.0.1:$port/index.html" >/dev/null
	# logs -f follows until the service goes away.
	"$CPIPE_BIN" logs -f serve > follow.log 2>&1 &
	follower=$!
	sleep 0.5
	kill -0 "$follower" || fail "logs -f returned while the service runs"
	run cpipe up
	[ "$status" -eq 0 ] || fail "second up failed"
	assert_contains "already up"
	run cpipe down
	[ "$status" -eq 0 ] || fail "down failed"
	assert_contains "stopped serve"
	for i in $(seq 50); do kill -0 "$follower" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$follower" 2>/dev/null || fail "logs -f did not end after down"
	port_closed "$port" || fail "still listening after down"
	run cpipe ps
	[ "$status" -eq 0 ] || fail "ps after down failed"
	refute_contains "running"
	run cpipe down
	[ "$status" -eq 0 ] || fail "down twice failed"
}

@test "a service that died is reported as exited, not running" {
	port=$(free_port)
	service_spec "$port" 0
	cpipe up >/dev/null 2>&1
	pid=$(jq -r .handle.pid .cpipe/services/serve.json)
	kill -9 "$pid"
	sleep 0.3
	run cpipe ps
	[ "$status" -eq 0 ] || fail "ps failed"
	[[ "$output" == *"serve"*"exited"* ]] || fail "dead service not shown as exited: $output"
	run cpipe down
	[ "$status" -eq 0 ]
	[ ! -e .cpipe/services/serve.json ]
}

@test "a port in use is reported before anything starts, naming who holds it" {
	port=$(free_port)
	service_spec "$port" 0
	busybox httpd -f -p "127.0.0.1:$port" -h "$BATS_TEST_TMPDIR" &
	holder=$!
	for i in $(seq 50); do port_closed "$port" || break; sleep 0.1; done
	run cpipe run infer
	kill "$holder"
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "port $port on 127.0.0.1 is already in use by pid $holder (busybox)"
	assert_contains "nothing was started"
	[ ! -e "$(vol work)/out.txt" ]
}

@test "with network_mode: host the local runtime refuses a host port that differs from the container port" {
	spec <<'EOF'
stages:
  serve:
    service: true
    command: sleep 300
    network_mode: host
    ports: ["18080:8000"]
EOF
	run cpipe up
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains "maps host port 18080 to 8000"
}

@test "--keep-serving leaves the service up and down removes it" {
	port=$(free_port)
	service_spec "$port" 0
	run cpipe run --keep-serving infer
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "serve keeps running"
	curl -fsS "http://127.0.0.1:$port/index.html" >/dev/null || fail "not serving after the run"
	run cpipe run --force infer
	[ "$status" -eq 0 ] || fail "run with the service up failed"
	assert_contains "already up"
	refute_contains "serve stopped"
	curl -fsS "http://127.0.0.1:$port/index.html" >/dev/null || fail "a run stopped a service it did not start"
	cpipe down >/dev/null
	port_closed "$port" || fail "still listening after down"
}

@test "Ctrl-C leaves nothing listening and no process of the project" {
	port=$(free_port)
	mkdir -p www && echo ok > www/index.html
	spec <<EOF
stages:
  serve:
    service: true
    command: busybox httpd -f -p 127.0.0.1:$port -h /www
    volumes: ["./www:/www:ro"]
    ports: ["$port:$port"]
    healthcheck: {http: "http://127.0.0.1:$port/index.html", interval: 100ms}
  infer:
    command: sleep 347
    depends_on: {serve: {condition: service_started}}
EOF
	"$CPIPE_BIN" run > out.log 2>&1 &
	pid=$!
	for i in $(seq 100); do [ -n "$(procs_matching 'sleep 347')" ] && break; sleep 0.1; done
	[ -n "$(procs_matching 'sleep 347')" ] || { output=$(cat out.log); fail "did not start"; }
	kill -INT "$pid"
	wait "$pid" && rc=0 || rc=$?
	output=$(cat out.log)
	[ "$rc" -eq 130 ] || fail "expected 130, got $rc"
	port_closed "$port" || fail "still listening after Ctrl-C"
	[ -z "$(procs_matching 'sleep 347')" ] || fail "job left running"
	[ -z "$(procs_matching "httpd -f -p 127.0.0.1:$port")" ] || fail "service left running"
	[ ! -e .cpipe/services/serve.json ] || fail "state file left for a stopped service"
}

# A service that ignores SIGTERM, stopped after `grace` ($1) by SIGKILL.
stubborn_spec() {
	spec <<EOF2
stages:
  serve:
    service: true
    command: sh -c 'trap "" TERM; echo cpipe-stubborn; while :; do sleep 0.05; done'
    stop_grace_period: $1
  job:
    command: echo job-ran
    depends_on: {serve: {condition: service_started}}
EOF2
}

@test "stop_grace_period is how long a service ignoring SIGTERM gets before SIGKILL" {
	stubborn_spec 1s
	t0=$(now_ms)
	run cpipe run
	took=$(($(now_ms) - t0))
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "job   | job-ran"
	assert_contains "serve stopped"
	[ -z "$(procs_matching cpipe-stubborn)" ] || fail "the service survived its stop"
	# Not the default 10 s, and not before the grace ran out.
	[ "$took" -ge 900 ] && [ "$took" -lt 6000 ] || fail "a 1s grace took $took ms"

	stubborn_spec 3s
	t0=$(now_ms)
	run cpipe run --force
	took=$(($(now_ms) - t0))
	[ "$status" -eq 0 ] || fail "run failed"
	[ "$took" -ge 2500 ] && [ "$took" -lt 8000 ] || fail "a 3s grace took $took ms"

	# down honours it too.
	stubborn_spec 1s
	run cpipe up serve
	[ "$status" -eq 0 ] || fail "up failed"
	t0=$(now_ms)
	run cpipe down
	took=$(($(now_ms) - t0))
	[ "$status" -eq 0 ] || fail "down failed"
	[ -z "$(procs_matching cpipe-stubborn)" ] || fail "the service survived down"
	[ "$took" -ge 900 ] && [ "$took" -lt 6000 ] || fail "down with a 1s grace took $took ms"
}

@test "a CMD health check that times out leaves none of its processes behind" {
	spec <<'EOF2'
stages:
  serve:
    service: true
    command: sleep 300
    healthcheck:
      test: ["CMD-SHELL", "sleep 31; true"]
      timeout: 1s
      interval: 100ms
      retries: 2
EOF2
	run cpipe up
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "did not become healthy"
	[ -z "$(procs_matching 'sleep 31')" ] || fail "the health check's sleep was left running"
}
