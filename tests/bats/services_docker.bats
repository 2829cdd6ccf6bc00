#!/usr/bin/env bats
# Services on the docker runtime, at parity with services_local.bats:
# health-gated runs, published ports (fixed and ephemeral), up/ps/logs/down
# from separate invocations, port conflicts, --keep-serving, Ctrl-C. What a
# test expects of Docker itself is checked through the Engine API.

load helpers
load docker_helpers

# Containers of this test's project that are running.
running_containers() {
	api "http://d/containers/json?filters=$(filter "com.cpipe.project=$P")" | jq length
}

# The service's container as its state file names it.
service_container() {
	jq -r .handle.container .cpipe/services/serve.json
}

# busybox httpd on container port 8000, published on 127.0.0.1:$1, up only
# after $2 seconds; its http: healthcheck names the container port, which
# cpipe maps to the published one. infer calls it by stage name on the
# project network, then waits for ctl/done so the test can call the
# published port while the run is on.
service_spec() {
	local port=$1 delay=${2:-1}
	mkdir -p www ctl
	echo "model-v1" > www/index.html
	spec <<EOF
name: $P
volumes:
  work: {}
stages:
  serve:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'trap "exit 0" TERM; sleep $delay; httpd -f -p 8000 -h /www & while :; do if [ -e /www/poke ]; then rm -f /www/poke; echo poked-while-detached; fi; sleep 0.1; done'
    volumes: ["./www:/www"]
    inputs: [./www]
    ports: ["127.0.0.1:$port:8000"]
    healthcheck:
      http: http://127.0.0.1:8000/index.html
      interval: 200ms
      retries: 50
  infer:
    image: cpipe-test/busybox
    command: sh -c 'wget -q -O - http://serve:8000/index.html | tee /work/out.txt; touch /ctl/called; for i in \$\$(seq 100); do [ -e /ctl/done ] && exit 0; sleep 0.1; done; exit 1'
    volumes: [work:/work, ./ctl:/ctl]
    depends_on:
      serve: {condition: service_healthy}
    outputs: [work:/out.txt]
EOF
}

@test "docker: a service that becomes healthy late gates a job that calls it by name; its port answers on 127.0.0.1" {
	port=$(free_port)
	service_spec "$port" 1
	"$CPIPE_BIN" --runtime "$RT" run infer > out.log 2>&1 &
	pid=$!
	wait_for_file ctl/called 60 || { kill -INT "$pid"; wait "$pid"; output=$(cat out.log); fail "infer never called serve"; }
	body=$(curl -fsS -m 5 "http://127.0.0.1:$port/index.html" || true)
	touch ctl/done
	wait "$pid" && rc=0 || rc=$?
	output=$(cat out.log)
	[ "$rc" -eq 0 ] || fail "run failed ($rc)"
	[ "$body" = model-v1 ] || fail "the published port 127.0.0.1:$port answered '$body'"
	assert_contains "starting service serve"
	assert_line_re "serve is healthy \\(([1-9]|[1-9][0-9])\\.[0-9]+s\\)"
	assert_line_re "^infer +\\| model-v1$"
	# The run started serve, so the run stopped and removed it.
	assert_contains "serve stopped"
	port_closed "$port" || fail "serve still listening after the run"
	[ ! -e .cpipe/services/serve.json ] || fail "state of a stopped service left behind"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
	rec=$(ls .cpipe/runs/*.json | tail -1)
	jq -e '[.stages[] | select(.name == "serve")][0].inputs["./www"].digest | startswith("sha256:")' "$rec" > /dev/null ||
		fail "record does not list what serve served"
	jq -e '[.stages[] | select(.name == "infer")][0].outputs["work:/out.txt"].digest | startswith("sha256:")' "$rec" > /dev/null ||
		fail "record has no digest of infer's output"
}

@test "docker: a job that is up to date does not start the service" {
	port=$(free_port)
	service_spec "$port" 0
	touch ctl/done
	dcpipe run infer > /dev/null 2>&1 || { output=""; fail "first run failed"; }
	run dcpipe run infer
	[ "$status" -eq 0 ] || fail "second run failed"
	assert_contains "infer is up to date, skipped"
	refute_contains "starting service serve"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "docker: a service that never becomes healthy fails the run with its last log lines" {
	port=$(free_port)
	spec <<EOF
name: $P
stages:
  serve:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'trap "exit 0" TERM; echo "loading model..."; echo "model file is corrupt" >&2; sleep 300 & wait'
    ports: ["127.0.0.1:$port:8000"]
    healthcheck: {http: "http://127.0.0.1:8000/", interval: 100ms, retries: 5}
  infer:
    image: cpipe-test/busybox
    command: echo never
    depends_on: {serve: {condition: service_healthy}}
EOF
	run dcpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains 'service "serve" did not become healthy after 5 checks'
	assert_contains "last log lines:"
	assert_contains "  loading model..."
	assert_contains "  model file is corrupt"
	refute_contains "infer | never"
	[ -z "$(project_containers)" ] || fail "the unhealthy service was left: $(project_containers)"
	port_closed "$port" || fail "still listening"
}

@test "docker: a CMD-SHELL check that hangs past its timeout fails, does not hold up the run, and is killed" {
	mkdir -p ctl
	spec <<EOF
name: $P
stages:
  serve:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'trap "exit 0" TERM; sleep 1.5; touch /tmp/ready; sleep 600 & wait'
    healthcheck:
      test: ["CMD-SHELL", "test -e /tmp/ready || sleep 7391"]
      interval: 100ms
      timeout: 300ms
      retries: 100
  job:
    image: cpipe-test/busybox
    command: sh -c 'echo ran-after-healthy; for i in \$\$(seq 300); do [ -e /ctl/done ] && exit 0; sleep 0.1; done; exit 1'
    volumes: [./ctl:/ctl]
    depends_on: {serve: {condition: service_healthy}}
EOF
	start=$(date +%s)
	"$CPIPE_BIN" --runtime "$RT" run > out.log 2>&1 &
	pid=$!
	for i in $(seq 300); do grep -q "ran-after-healthy" out.log && break; sleep 0.1; done
	output=$(cat out.log)
	healthy_at=$(date +%s)
	# The service still runs: the timed-out checks did not wait for it to go.
	left=$(procs_matching 'sleep 7391')
	touch ctl/done
	wait "$pid" && rc=0 || rc=$?
	output=$(cat out.log)
	[ "$rc" -eq 0 ] || fail "run failed ($rc)"
	assert_contains "serve is healthy"
	assert_line_re "^job +\\| ran-after-healthy$"
	[ $((healthy_at - start)) -lt 15 ] || fail "health gating took $((healthy_at - start))s"
	[ -z "$left" ] || fail "timed-out health checks still run: $left"
	[ -z "$(procs_matching 'sleep 7391')" ] || fail "health checks outlived the run"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "docker: up, ps, logs -f and down work from separate shells" {
	port=$(free_port)
	service_spec "$port" 0
	run dcpipe up
	[ "$status" -eq 0 ] || fail "up failed"
	assert_contains "serve is healthy"
	curl -fsS "http://127.0.0.1:$port/index.html" | grep -q model-v1 || fail "not serving after up returned"
	[ "$(running_containers)" -eq 1 ] || fail "expected one running container"
	run_id=$(jq -r .run .cpipe/services/serve.json)
	run dcpipe ps
	[ "$status" -eq 0 ] || fail "ps failed"
	assert_line_re "^serve +running +healthy +127\\.0\\.0\\.1:$port->8000/tcp +[0-9]+s +$run_id$"
	run dcpipe ps --json
	[ "$status" -eq 0 ] || fail "ps --json failed"
	echo "$output" | jq -e --arg run "$run_id" '.[0].stage == "serve" and .[0].state == "running" and .[0].health == "healthy"
		and .[0].ports[0].host_port == '"$port"' and .[0].ports[0].container_port == 8000 and .[0].run == $run' > /dev/null ||
		fail "ps json"
	# Output the service writes after cpipe up has returned reaches logs -f.
	"$CPIPE_BIN" --runtime "$RT" logs -f serve > follow.log 2>&1 &
	follower=$!
	touch www/poke
	for i in $(seq 100); do grep -q "^serve | poked-while-detached$" follow.log && break; sleep 0.1; done
	grep -q "^serve | poked-while-detached$" follow.log || { output=$(cat follow.log); fail "logs -f did not show new output"; }
	kill -0 "$follower" || fail "logs -f returned while the service runs"
	# Ctrl-C ends a follower promptly and cleanly.
	"$CPIPE_BIN" --runtime "$RT" logs -f serve > follow2.log 2>&1 &
	second=$!
	# Once it prints the log so far it handles SIGINT (a background job
	# starts with SIGINT ignored, so one sent earlier would be lost).
	for i in $(seq 100); do grep -q "poked-while-detached" follow2.log && break; sleep 0.1; done
	kill -INT "$second"
	for i in $(seq 30); do kill -0 "$second" 2> /dev/null || break; sleep 0.1; done
	! kill -0 "$second" 2> /dev/null || fail "logs -f ignored Ctrl-C"
	wait "$second" || fail "logs -f ended with $? after Ctrl-C"
	run dcpipe logs serve
	[ "$status" -eq 0 ] || fail "logs failed"
	assert_contains "serve | poked-while-detached"
	run dcpipe up
	[ "$status" -eq 0 ] || fail "second up failed"
	assert_contains "already up"
	[ "$(running_containers)" -eq 1 ] || fail "a second up started another container"
	run dcpipe down
	[ "$status" -eq 0 ] || fail "down failed"
	assert_contains "stopped serve"
	for i in $(seq 50); do kill -0 "$follower" 2> /dev/null || break; sleep 0.1; done
	! kill -0 "$follower" 2> /dev/null || fail "logs -f did not end after down"
	port_closed "$port" || fail "still listening after down"
	[ -z "$(project_containers)" ] || fail "containers left after down: $(project_containers)"
	run dcpipe ps
	[ "$status" -eq 0 ] || fail "ps failed"
	refute_contains "running"
	run dcpipe down
	[ "$status" -eq 0 ] || fail "down twice failed"
}

@test "docker: a service that died is reported as exited; down removes its container" {
	port=$(free_port)
	service_spec "$port" 0
	dcpipe up > /dev/null 2>&1 || { output=""; fail "up failed"; }
	id=$(service_container)
	api -X POST "http://d/containers/$id/kill" > /dev/null
	for i in $(seq 50); do [ "$(running_containers)" -eq 0 ] && break; sleep 0.1; done
	run dcpipe ps
	[ "$status" -eq 0 ] || fail "ps failed"
	assert_line_re "^serve +exited +- "
	run dcpipe ps --json
	[ "$status" -eq 0 ] || fail "ps --json failed"
	echo "$output" | jq -e '.[0].state == "exited"' > /dev/null || fail "ps json"
	run dcpipe down
	[ "$status" -eq 0 ] || fail "down failed"
	[ ! -e .cpipe/services/serve.json ] || fail "state file left"
	[ "$(api -o /dev/null -w '%{http_code}' "http://d/containers/$id/json")" = 404 ] || fail "container not removed"
}

@test "docker: a port in use is reported before anything is created in Docker" {
	port=$(free_port)
	service_spec "$port" 0
	busybox httpd -f -p "127.0.0.1:$port" -h "$BATS_TEST_TMPDIR" &
	holder=$!
	for i in $(seq 50); do port_closed "$port" || break; sleep 0.1; done
	run dcpipe run infer
	kill "$holder"
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "port $port on 127.0.0.1 is already in use by pid $holder (busybox)"
	assert_contains "nothing was started"
	f=$(filter "com.cpipe.project=$P")
	[ "$(api "http://d/containers/json?all=1&filters=$f" | jq length)" -eq 0 ] || fail "a container was created"
	[ "$(api "http://d/volumes?filters=$f" | jq '.Volumes | length')" -eq 0 ] || fail "a volume was created"
	[ "$(api "http://d/networks?filters=$f" | jq length)" -eq 0 ] || fail "a network was created"
}

@test "docker: a container port without a host port gets a free one, used by the health check and shown by ps" {
	mkdir -p www
	echo ok > www/healthz
	spec <<EOF
name: $P
stages:
  serve:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'trap "exit 0" TERM; sleep 0.5; httpd -f -p 8000 -h /www & wait'
    volumes: ["./www:/www:ro"]
    ports: ["8000"]
    healthcheck: {http: "http://localhost:8000/healthz", interval: 100ms, retries: 100}
EOF
	run dcpipe up
	[ "$status" -eq 0 ] || fail "up failed"
	assert_contains "serve is healthy"
	id=$(service_container)
	hp=$(api "http://d/containers/$id/json" | jq -r '.NetworkSettings.Ports["8000/tcp"][0].HostPort')
	[ -n "$hp" ] && [ "$hp" != null ] && [ "$hp" -gt 0 ] || fail "no host port bound: $hp"
	[ "$(jq '.ports[0].host_port' .cpipe/services/serve.json)" = "$hp" ] || fail "state file port"
	run dcpipe ps
	[ "$status" -eq 0 ] || fail "ps failed"
	assert_line_re "^serve +running +healthy +127\\.0\\.0\\.1:$hp->8000/tcp "
	[ "$(curl -fsS "http://127.0.0.1:$hp/healthz")" = ok ] || fail "host port $hp does not answer"
	run dcpipe down
	[ "$status" -eq 0 ] || fail "down failed"
	[ -z "$(project_containers)" ] || fail "containers left after down: $(project_containers)"
}

@test "docker: --keep-serving leaves the service up, a later run uses it, down removes it" {
	port=$(free_port)
	service_spec "$port" 0
	touch ctl/done
	run dcpipe run --keep-serving infer
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "serve keeps running"
	curl -fsS "http://127.0.0.1:$port/index.html" > /dev/null || fail "not serving after the run"
	id=$(service_container)
	run dcpipe run --force infer
	[ "$status" -eq 0 ] || fail "run with the service up failed"
	assert_contains "already up"
	refute_contains "serve stopped"
	assert_line_re "^infer +\\| model-v1$"
	[ "$(service_container)" = "$id" ] || fail "the second run replaced the service"
	[ "$(running_containers)" -eq 1 ] || fail "expected only serve running"
	curl -fsS "http://127.0.0.1:$port/index.html" > /dev/null || fail "a run stopped a service it did not start"
	dcpipe down > /dev/null
	port_closed "$port" || fail "still listening after down"
	[ -z "$(project_containers)" ] || fail "containers left after down: $(project_containers)"
}

@test "docker: Ctrl-C leaves nothing listening and no container of the project" {
	port=$(free_port)
	mkdir -p www && echo ok > www/index.html
	spec <<EOF
name: $P
stages:
  serve:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'trap "exit 0" TERM; httpd -f -p 8000 -h /www & wait'
    volumes: ["./www:/www:ro"]
    ports: ["127.0.0.1:$port:8000"]
    healthcheck: {http: "http://127.0.0.1:8000/index.html", interval: 100ms}
  infer:
    image: cpipe-test/busybox
    command: sleep 347
    depends_on: {serve: {condition: service_started}}
EOF
	"$CPIPE_BIN" --runtime "$RT" run > out.log 2>&1 &
	pid=$!
	for i in $(seq 300); do [ "$(running_containers)" -eq 2 ] && break; sleep 0.1; done
	[ "$(running_containers)" -eq 2 ] || { kill -INT "$pid"; wait "$pid"; output=$(cat out.log); fail "did not start"; }
	kill -INT "$pid"
	wait "$pid" && rc=0 || rc=$?
	output=$(cat out.log)
	[ "$rc" -eq 130 ] || fail "expected 130, got $rc"
	port_closed "$port" || fail "still listening after Ctrl-C"
	[ -z "$(project_containers)" ] || fail "containers left after Ctrl-C: $(project_containers)"
	[ ! -e .cpipe/services/serve.json ] || fail "state file left for a stopped service"
}
