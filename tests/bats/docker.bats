#!/usr/bin/env bats
# The docker runtime end to end against the real daemon: builds, named
# volumes, the project network, ports, failures, Ctrl-C and cleanup.
# tests/docker-setup starts dockerd if needed and provides the local base
# image cpipe-test/busybox; every test uses its own project name and
# removes what that project left in Docker.

load helpers
load docker_helpers

@test "build: multi-stage Dockerfile with target and args, .dockerignore honoured, one build per image" {
	mkdir -p data
	cat > Dockerfile <<'EOF'
FROM cpipe-test/busybox AS base
ARG GREETING=hello
RUN echo "$GREETING from the build" > /greeting
COPY . /ctx
FROM base AS final
RUN echo final > /stage
EOF
	printf 'secret.txt\ndata\n!data/keep.txt\n# a comment\n' > .dockerignore
	echo s > secret.txt
	echo k > data/keep.txt
	echo d > data/drop.txt
	spec <<EOF
name: $P
stages:
  base:
    build: {context: ., target: base, args: {GREETING: bonjour}}
    command: sh -c 'cat /greeting; test -e /stage || echo no-final-stage; cd /ctx && find . | sort'
  final:
    build: .
    image: $P-final:dev
    command: cat /stage /greeting
  again:
    build: .
    image: $P-final:dev
    command: cat /stage
    depends_on: [final]
EOF
	run dcpipe build base
	[ "$status" -eq 0 ] || fail "cpipe build failed"
	assert_contains "built base: sha256:"
	# Progress goes to stderr: --json leaves one document on stdout.
	dcpipe build --json base 2> /dev/null | jq -e '.[0].stage == "base" and (.[0].id | startswith("sha256:"))' > /dev/null ||
		fail "build --json"
	api "http://d/images/$P-base:latest/json" | jq -e --arg p "$P" '.Config.Labels["com.cpipe.project"] == $p' > /dev/null ||
		fail "image $P-base missing or unlabelled"

	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_line_re "^base +\\| bonjour from the build$"
	assert_line_re "^base +\\| no-final-stage$"
	assert_line_re "^base +\\| \\./data/keep\\.txt$"
	assert_line_re "^base +\\| \\./Dockerfile$"
	refute_contains "secret.txt"
	refute_contains "drop.txt"
	refute_contains "./.cpipe"
	assert_line_re "^final +\\| final$"
	assert_line_re "^final +\\| hello from the build$"
	assert_line_re "^again +\\| final$"
	# final and again share build: + image:, so it is built once.
	[ "$(grep -c "Successfully tagged $P-final:dev" <<< "$output")" -eq 1 ] || fail "built more than once"
}

@test "a named volume carries files through three stages and outlives the run" {
	spec <<EOF
name: $P
volumes:
  data: {}
stages:
  one: {image: cpipe-test/busybox, command: sh -c 'echo one > /d/one', volumes: [data:/d]}
  two: {image: cpipe-test/busybox, command: sh -c 'cat /d/one > /d/two; echo two >> /d/two', volumes: [data:/d], depends_on: [one]}
  three: {image: cpipe-test/busybox, command: sh -c 'cat /d/two > /d/three; echo three >> /d/three', volumes: [data:/d], depends_on: [two]}
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	api "http://d/volumes/${P}_data" | jq -e --arg p "$P" '.Labels["com.cpipe.project"] == $p' > /dev/null ||
		fail "volume ${P}_data missing or unlabelled"
	run docker run --rm -v "${P}_data:/check" cpipe-test/busybox cat /check/three
	[ "$status" -eq 0 ] || fail "fresh container could not read the volume"
	[ "$output" = "$(printf 'one\ntwo\nthree')" ] || fail "unexpected volume content"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
	# Jobs alone need no project network: nothing has to reach them.
	[ "$(api -o /dev/null -w '%{http_code}' "http://d/networks/${P}_default")" = 404 ] ||
		fail "a project network was made for jobs alone"
}

@test "a :ro volume mount cannot be written" {
	spec <<EOF
name: $P
volumes:
  data: {}
stages:
  writer: {image: cpipe-test/busybox, command: touch /d/x, volumes: ["data:/d:ro"]}
EOF
	run dcpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "Read-only file system"
	assert_contains 'stage "writer" failed with exit code 1'
}

@test "stages reach each other by stage name on the project network" {
	spec <<EOF
name: $P
stages:
  web:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'mkdir -p /www && echo hello-from-web > /www/index.html && trap "exit 0" TERM; httpd -f -p 8080 -h /www & wait'
  client:
    image: cpipe-test/busybox
    depends_on: [web]
    command: sh -c 'for i in \$\$(seq 50); do wget -q -O - http://web:8080/ && exit 0; sleep 0.2; done; exit 1'
  talker:
    image: cpipe-test/busybox
    depends_on: [client]
    command: sh -c 'echo ping | nc -w 2 web 8080 | head -1'
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "client | hello-from-web"
	assert_line_re "^talker +\\| HTTP/1\\.[01] 400"
	api "http://d/networks/${P}_default" | jq -e --arg p "$P" '.Labels["com.cpipe.project"] == $p' > /dev/null ||
		fail "network ${P}_default missing or unlabelled"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "container_name is a name on the project network; network_mode none and host as compose means them" {
	spec <<EOF
name: $P
stages:
  web:
    image: cpipe-test/busybox
    service: true
    container_name: model-server
    command: sh -c 'mkdir -p /www && echo hello-by-container-name > /www/index.html && trap "exit 0" TERM; httpd -f -p 8080 -h /www & wait'
  client:
    image: cpipe-test/busybox
    depends_on: [web]
    command: sh -c 'for i in \$\$(seq 50); do wget -q -O - http://model-server:8080/ && exit 0; sleep 0.2; done; exit 1'
  isolated:
    image: cpipe-test/busybox
    network_mode: none
    depends_on: [client]
    command: sh -c 'ls /sys/class/net | tr "\\n" " "; echo; wget -q -T 2 -O - http://web:8080/ || echo no-network'
  onhost:
    image: cpipe-test/busybox
    network_mode: host
    depends_on: [isolated]
    command: sh -c 'ls /sys/class/net | grep -qx docker0 && echo sees-docker0'
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_line_re "^client +\\| hello-by-container-name$"
	assert_line_re "^isolated +\\| lo ?$"
	assert_line_re "^isolated +\\| no-network$"
	assert_line_re "^onhost +\\| sees-docker0$"
}

@test "a failing stage names stage and exit code, stops the run and leaves no container" {
	spec <<EOF
name: $P
stages:
  bad: {image: cpipe-test/busybox, command: sh -c 'echo boom; exit 7'}
  after: {image: cpipe-test/busybox, command: echo never-printed, depends_on: [bad]}
EOF
	run dcpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_line_re "^bad +\\| boom$"
	assert_contains 'stage "bad" failed with exit code 7'
	refute_contains "never-printed"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "a command that cannot start is reported with the daemon's reason" {
	spec <<EOF
name: $P
stages:
  broken: {image: cpipe-test/busybox, command: /no/such/binary}
EOF
	run dcpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains 'stage "broken" could not start'
	assert_contains "/no/such/binary"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "SIGINT mid-run stops every container of the project and exits 130" {
	spec <<EOF
name: $P
stages:
  slow:
    image: cpipe-test/busybox
    command: sh -c 'trap "exit 143" TERM; echo started; sleep 60 & wait'
  stubborn:
    image: cpipe-test/busybox
    command: sleep 60
    stop_grace_period: 1s
  later: {image: cpipe-test/busybox, command: echo never-printed, depends_on: [slow, stubborn]}
EOF
	# The binary itself in the background, so that $! is cpipe's pid.
	"$CPIPE_BIN" --runtime "$RT" run -j 2 > "$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$! i running=0
	for ((i = 0; i < 200; i++)); do
		running=$(api "http://d/containers/json?filters=$(filter "com.cpipe.project=$P")" | jq length)
		[ "$running" -eq 2 ] && break
		sleep 0.1
	done
	[ "$running" -eq 2 ] || { kill -INT "$pid"; wait "$pid"; fail "the two stages never ran together"; }
	kill -INT "$pid"
	local rc=0
	wait "$pid" || rc=$?
	output=$(cat "$BATS_TEST_TMPDIR/out")
	[ "$rc" -eq 130 ] || fail "expected exit 130, got $rc"
	refute_contains "never-printed"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

# The state of the container of stage $1 of this test's project: "created"
# while cpipe holds it ready, "running" once started; empty when none.
stage_state() {
	api "http://d/containers/json?all=1&filters=$(printf '{"label":["com.cpipe.project=%s","com.cpipe.stage=%s"]}' "$P" "$1" | jq -sRr @uri)" |
		jq -r '.[0].State // empty'
}

# Starts cpipe run in the background (output in $BATS_TEST_TMPDIR/out, pid
# in $pid) and waits until stage $1's container is held ready (created)
# while stage $2's runs: the next job is created ahead of its start.
run_until_created_ahead() {
	"$CPIPE_BIN" --runtime "$RT" run > "$BATS_TEST_TMPDIR/out" 2>&1 &
	pid=$!
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(stage_state "$1")" = created ] && [ "$(stage_state "$2")" = running ] && return 0
		sleep 0.05
	done
	return 1
}

@test "the next job is created while the one before runs; when that fails, nothing of it is left" {
	spec <<EOF
name: $P
stages:
  first: {image: cpipe-test/busybox, command: sh -c 'sleep 3; echo giving-up; exit 3'}
  second: {image: cpipe-test/busybox, command: echo never-printed, depends_on: [first]}
  third: {image: cpipe-test/busybox, command: echo never-printed-either, depends_on: [second]}
EOF
	local pid rc=0 seen=1
	run_until_created_ahead second first || seen=0
	wait "$pid" || rc=$?
	output=$(cat "$BATS_TEST_TMPDIR/out")
	[ "$seen" = 1 ] || fail "second was never created while first ran"
	[ "$rc" -eq 1 ] || fail "expected exit 1, got $rc"
	assert_contains 'stage "first" failed with exit code 3'
	refute_contains "never-printed"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "Ctrl-C while a job runs and the next is created ahead: exit 130, nothing left" {
	spec <<EOF
name: $P
stages:
  first: {image: cpipe-test/busybox, command: sh -c 'trap "exit 143" TERM; sleep 60 & wait'}
  second: {image: cpipe-test/busybox, command: echo never-printed, depends_on: [first]}
EOF
	local pid rc=0
	run_until_created_ahead second first || { kill -INT "$pid"; wait "$pid"; fail "second was never created while first ran"; }
	kill -INT "$pid"
	wait "$pid" || rc=$?
	output=$(cat "$BATS_TEST_TMPDIR/out")
	[ "$rc" -eq 130 ] || fail "expected exit 130, got $rc"
	refute_contains "never-printed"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "a job created ahead sees what the job before wrote; found up to date, it is skipped and leaves nothing" {
	spec <<EOF
name: $P
volumes:
  data: {}
stages:
  # outputs: [] runs it every time (it would be observed and skipped).
  first: {image: cpipe-test/busybox, command: sh -c 'sleep 2; echo same > /d/in', volumes: [data:/d], outputs: []}
  second:
    image: cpipe-test/busybox
    command: sh -c 'cat /d/in; cp /d/in /d/out'
    volumes: [data:/d]
    inputs: [data:/in]
    outputs: [data:/out]
    depends_on: [first]
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "first run failed"
	assert_line_re "^second +\\| same$"
	local pid rc=0 seen=1
	run_until_created_ahead second first || seen=0
	wait "$pid" || rc=$?
	output=$(cat "$BATS_TEST_TMPDIR/out")
	[ "$seen" = 1 ] || fail "second was never created while first ran"
	[ "$rc" -eq 0 ] || fail "second run: expected exit 0, got $rc"
	assert_contains "second is up to date, skipped"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "volume ls and rm act on the project's Docker volumes; in-use removal shows the daemon's reason" {
	spec <<EOF
name: $P
volumes:
  data: {}
stages:
  fill: {image: cpipe-test/busybox, command: sh -c 'echo 12345 > /d/f', volumes: [data:/d]}
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	run dcpipe volume ls
	[ "$status" -eq 0 ] || fail "volume ls failed"
	assert_contains "data"
	assert_contains "/volumes/${P}_data/"
	run dcpipe volume ls --json
	[ "$status" -eq 0 ] || fail "volume ls --json failed"
	echo "$output" | jq -e '.[0].name == "data" and .[0].declared and .[0].size == 6' > /dev/null ||
		fail "volume ls --json"

	local cid
	cid=$(api -X POST -H 'Content-Type: application/json' \
		-d "{\"Image\":\"cpipe-test/busybox\",\"Cmd\":[\"true\"],\"Labels\":{\"com.cpipe.project\":\"$P\"},\"HostConfig\":{\"Mounts\":[{\"Type\":\"volume\",\"Source\":\"${P}_data\",\"Target\":\"/d\"}]}}" \
		http://d/containers/create | jq -r .Id)
	run dcpipe volume rm data
	[ "$status" -eq 1 ] || fail "expected exit 1 for an in-use volume, got $status"
	# The daemon's own reason: Docker says "in use", Podman "being used".
	assert_line_re "volume (is in use|.*is being used)"
	api -X DELETE "http://d/containers/$cid" > /dev/null

	run dcpipe volume rm data
	[ "$status" -eq 0 ] || fail "volume rm failed"
	[ "$(api -o /dev/null -w '%{http_code}' "http://d/volumes/${P}_data")" = 404 ] || fail "volume still there"
}

@test "an unreachable daemon exits 3 naming the socket" {
	spec <<EOF
name: $P
stages:
  a: {image: cpipe-test/busybox, command: "true"}
EOF
	run env "$HOST_VAR=unix:///nonexistent/docker.sock" "$CPIPE_BIN" --runtime "$RT" run
	[ "$status" -eq 3 ] || fail "expected exit 3, got $status"
	assert_contains "/nonexistent/docker.sock"
	run env "$HOST_VAR=unix:///nonexistent/docker.sock" "$CPIPE_BIN" --runtime "$RT" volume ls
	[ "$status" -eq 3 ] || fail "volume ls: expected exit 3, got $status"
}

@test "an image that is neither local nor pullable is a clear error" {
	spec <<EOF
name: $P
stages:
  a: {image: "cpipe-test/absent-image:1", command: "true"}
EOF
	run dcpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains 'image "cpipe-test/absent-image:1" is not available locally and could not be pulled: '
}

@test "environment, working_dir, user and entrypoint reach the container" {
	spec <<EOF
name: $P
stages:
  env:
    image: cpipe-test/busybox
    environment: {GREETING: salut}
    working_dir: /tmp
    user: "65534"
    params: {lr: 0.5}
    entrypoint: [sh, -c]
    command: ['echo "\$\$GREETING \$\$(pwd) \$\$(id -u) \$\$CPIPE_STAGE \$\$CPIPE_PARAM_LR"']
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "env | salut /tmp 65534 env 0.5"
}

@test "large stdout and stderr arrive complete and demultiplexed" {
	spec <<EOF
name: $P
stages:
  loud: {image: cpipe-test/busybox, command: sh -c 'seq 1 40000; echo to-stderr >&2'}
EOF
	run dcpipe -q run
	[ "$status" -eq 0 ] || { output=$(tail -5 <<< "$output"); fail "run failed"; }
	local lines
	lines=$(grep -c '^loud | [0-9]*$' <<< "$output")
	grep -q '^loud | 40000$' <<< "$output" || { output=$(tail -5 <<< "$output"); fail "last line missing"; }
	grep -q '^loud | to-stderr$' <<< "$output" || { output=$(tail -5 <<< "$output"); fail "stderr missing"; }
	output=""
	[ "$lines" -eq 40000 ] || fail "$lines lines instead of 40000"
	# The log holds both streams; where they interleave is the executor's business.
	[ "$(grep -c 'to-stderr' .cpipe/logs/*/loud.log)" -eq 1 ] || fail "stderr missing from the log"
	grep -q '40000' .cpipe/logs/*/loud.log || fail "stdout missing from the log"
}

@test "-j 2 runs independent stages at the same time" {
	spec <<EOF
name: $P
volumes:
  data: {}
stages:
  waiter:
    image: cpipe-test/busybox
    command: sh -c 'for i in \$\$(seq 100); do [ -e /d/flag ] && exit 0; sleep 0.1; done; exit 1'
    volumes: [data:/d]
  setter:
    image: cpipe-test/busybox
    command: touch /d/flag
    volumes: [data:/d]
EOF
	run dcpipe run -j 2
	[ "$status" -eq 0 ] || fail "stages did not overlap"
}

@test "published ports are reachable from the host; bind mounts work" {
	local port=$((20000 + RANDOM % 20000))
	mkdir -p ctl
	spec <<EOF
name: $P
stages:
  web:
    service: false # a job that publishes a port, not a server (inferred)
    image: cpipe-test/busybox
    ports: ["127.0.0.1:$port:8080"]
    volumes: [./ctl:/ctl]
    command: sh -c 'mkdir -p /www && echo published > /www/index.html && httpd -p 8080 -h /www && for i in \$\$(seq 300); do [ -e /ctl/done ] && exit 0; sleep 0.1; done; exit 1'
EOF
	dcpipe run > "$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$! i body=""
	for ((i = 0; i < 200; i++)); do
		body=$(curl -s -m 1 "http://127.0.0.1:$port/" || true)
		[ "$body" = published ] && break
		sleep 0.1
	done
	touch ctl/done
	local rc=0
	wait "$pid" || rc=$?
	output=$(cat "$BATS_TEST_TMPDIR/out")
	[ "$body" = published ] || fail "port $port did not answer"
	[ "$rc" -eq 0 ] || fail "the stage did not see the bind-mounted file"
}

@test "services: http healthcheck through an ephemeral port, CMD healthcheck by exec, up and down" {
	spec <<EOF
name: $P
stages:
  serve:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'mkdir -p /www && echo ok > /www/healthz; trap "exit 0" TERM; httpd -f -p 8000 -h /www & wait'
    ports: ["8000"]
    healthcheck: {http: "http://localhost:8000/healthz", interval: 200ms, retries: 100}
  ready:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'trap "exit 0" TERM; sleep 1; touch /tmp/ready; sleep 600 & wait'
    healthcheck: {test: [CMD, test, -e, /tmp/ready], interval: 200ms, retries: 100}
  infer:
    image: cpipe-test/busybox
    depends_on:
      serve: {condition: service_healthy}
      ready: {condition: service_healthy}
    command: wget -q -O - http://serve:8000/healthz
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "serve is healthy"
	assert_contains "ready is healthy"
	assert_line_re "^infer +\\| ok$"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"

	run dcpipe up serve
	[ "$status" -eq 0 ] || fail "up failed"
	[ "$(project_containers)" = "/$P-serve-$(project_containers | sed 's/.*-//')" ] || fail "serve is not the one container up"
	run dcpipe ps
	[ "$status" -eq 0 ] || fail "ps failed"
	assert_contains "healthy"
	run dcpipe down
	[ "$status" -eq 0 ] || fail "down failed"
	[ -z "$(project_containers)" ] || fail "containers left behind after down: $(project_containers)"
}
