#!/usr/bin/env bats
# Compose keys of resources, security and lifecycle on the Docker runtime:
# observed inside the container, and in what the daemon was asked for
# (docker inspect through the Engine API).
# engine: docker
# Not run against Podman (tests/run-all's podman suites): Podman 4.3 on
# these VMs refuses raised ulimits (no CAP_SYS_RESOURCE), has no catatonit
# for init: true, and ignores DeviceRequests and ?platform= on create.

load helpers
load docker_helpers

IMG=cpipe-test/busybox:latest

stage_out() {
	printf '%s\n' "$output" | sed -n "s/^$1 *| //p"
}

# The JSON of the running container of stage $1 (this test's project).
inspect_stage() {
	local f id
	f=$(printf '{"label":["com.cpipe.project=%s","com.cpipe.stage=%s"]}' "$P" "$1" | jq -sRr @uri)
	id=$(api "http://d/containers/json?filters=$f" | jq -r '.[0].Id')
	api "http://d/containers/$id/json"
}

@test "docker: ulimits, read_only, tmpfs, shm_size, cap_drop, pids_limit seen inside the container" {
	spec <<EOF
name: $P
stages:
  a:
    image: $IMG
    command: sh -c 'echo nofile=\$\$(ulimit -n); touch /probe 2>&1; grep -E " /scratch " /proc/mounts; df -k /dev/shm | tail -1; grep CapEff /proc/self/status; cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max'
    ulimits: {nofile: {soft: 321, hard: 654}}
    read_only: true
    tmpfs: ["/scratch:size=1m"]
    shm_size: 32m
    cap_drop: [NET_RAW]
    pids_limit: 42
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "a | nofile=321"
	assert_contains "Read-only file system"
	stage_out a | grep -q '^tmpfs /scratch tmpfs .*size=1024k' || fail "no tmpfs at /scratch"
	stage_out a | grep -E '^shm +32768 ' > /dev/null || fail "/dev/shm is not 32 MiB"
	cap=$(stage_out a | awk '/CapEff/ {print $2}')
	[ $(( (0x$cap >> 13) & 1 )) = 0 ] || fail "CAP_NET_RAW kept: $cap"
	stage_out a | grep -qx 42 || fail "pids.max is not 42"
}

@test "docker: a service's create body has what the keys ask, and stop_signal reaches it on down" {
	spec <<EOF
name: $P
volumes:
  v: {}
stages:
  svc:
    service: true
    image: $IMG
    command: sh -c 'trap "echo got-usr1 > /v/sig; exit 0" USR1; while true; do sleep 0.1; done'
    volumes: [v:/v]
    init: true
    ipc: shareable
    cap_add: [SYS_PTRACE]
    stop_signal: SIGUSR1
    stop_grace_period: 7s
    restart: on-failure:5
    platform: linux/amd64
    labels: {team: vision}
  show:
    image: $IMG
    command: cat /v/sig
    volumes: [v:/v]
EOF
	run dcpipe up svc
	[ "$status" -eq 0 ] || fail "up failed"
	j=$(inspect_stage svc)
	[ "$(jq -r .HostConfig.Init <<< "$j")" = true ] || fail "Init: $(jq .HostConfig.Init <<< "$j")"
	[ "$(jq -r .HostConfig.IpcMode <<< "$j")" = shareable ] || fail "IpcMode"
	[ "$(jq -c .HostConfig.CapAdd <<< "$j")" = '["SYS_PTRACE"]' ] || fail "CapAdd"
	[ "$(jq -r .Config.StopSignal <<< "$j")" = SIGUSR1 ] || fail "StopSignal"
	[ "$(jq -r .Config.StopTimeout <<< "$j")" = 7 ] || fail "StopTimeout"
	[ "$(jq -c .HostConfig.RestartPolicy <<< "$j")" = '{"Name":"on-failure","MaximumRetryCount":5}' ] || fail "RestartPolicy"
	[ "$(jq -r '.Config.Labels.team' <<< "$j")" = vision ] || fail "labels"
	[ "$(jq -r .Platform <<< "$j")" = linux ] || fail "platform"
	run dcpipe down
	[ "$status" -eq 0 ] || fail "down failed"
	run dcpipe run show
	assert_contains "show | got-usr1"
}

@test "docker: restart: on-failure has the daemon restart a crashed service" {
	spec <<EOF
name: $P
volumes:
  v: {}
stages:
  flaky:
    service: true
    image: $IMG
    command: sh -c 'echo start >> /v/starts; [ \$\$(wc -l < /v/starts) -ge 2 ] || exit 3; while true; do sleep 0.1; done'
    volumes: [v:/v]
    restart: on-failure
  show:
    image: $IMG
    command: cat /v/starts
    volumes: [v:/v]
EOF
	run dcpipe up flaky
	[ "$status" -eq 0 ] || fail "up failed"
	for _ in $(seq 50); do
		[ "$(inspect_stage flaky | jq -r .RestartCount)" -ge 1 ] && break
		sleep 0.1
	done
	[ "$(inspect_stage flaky | jq -r .State.Running)" = true ] || fail "not running after the crash"
	run dcpipe down
	run dcpipe run show
	[ "$(stage_out show | grep -c start)" = 2 ] || fail "started $(stage_out show | grep -c start) times"
}

@test "docker: a service restarted during a run keeps being followed" {
	spec <<EOF
name: $P
volumes:
  v: {}
stages:
  flaky:
    service: true
    image: $IMG
    command: sh -c 'trap "exit 0" TERM; echo start >> /v/starts; [ \$\$(wc -l < /v/starts) -ge 2 ] || exit 3; echo serving-again; while true; do sleep 0.1; done'
    volumes: [v:/v]
    restart: on-failure
  job:
    image: $IMG
    command: sh -c 'until [ \$\$(wc -l < /v/starts) -ge 2 ]; do sleep 0.1; done; sleep 1; echo job-done'
    volumes: [v:/v]
    depends_on: {flaky: {condition: service_started}}
EOF
	run dcpipe run job
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "flaky | serving-again"
	assert_contains "job   | job-done"
}

@test "docker: secrets and configs from files and values are in the container, their values in no .cpipe file" {
	echo "s3cr3t-$RANDOM-docker" > token.txt
	secret=$(cat token.txt)
	export ENV_TOK="envs3cr3t-$RANDOM"
	spec <<EOF
name: $P
secrets:
  token: {file: ./token.txt}
  env_tok: {environment: ENV_TOK}
configs:
  app: {file: ./app.conf}
  inline: {content: "inline-config"}
volumes:
  v: {}
stages:
  a:
    image: $IMG
    command: sh -c 'cp /run/secrets/token /v/copy; cp /run/secrets/env_tok /v/envcopy; cat /etc/app.conf; echo; cat /inline; echo; echo x > /run/secrets/token 2>&1 || echo secret-ro'
    volumes: [v:/v]
    secrets: [token, env_tok]
    configs: [{source: app, target: /etc/app.conf}, inline]
  check:
    image: $IMG
    command: sh -c 'cmp /v/copy /run/secrets/token && [ "\$\$(cat /v/envcopy)" = "$ENV_TOK" ] && echo same'
    volumes: [v:/v]
    secrets: [token]
    depends_on: [a]
EOF
	echo "threads=4" > app.conf
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	stage_out a | grep -qx "threads=4" || fail "config not mounted"
	stage_out a | grep -qx "secret-ro" || fail "secret writable"
	stage_out a | grep -qx "inline-config" || fail "content: config not copied in"
	assert_contains "check | same"
	refute_contains "$secret"
	refute_contains "$ENV_TOK"
	! grep -r -e "$secret" -e "$ENV_TOK" .cpipe cpipe.lock || fail "a secret's value is in a file"
}

@test "docker: runtime: nvidia becomes a GPU device request the daemon is asked for" {
	spec <<EOF
name: $P
stages:
  g:
    image: $IMG
    command: "true"
    runtime: nvidia
EOF
	run dcpipe config --json
	[ "$(jq -c .stages.g.gpus <<< "$output")" = '["all"]' ] || fail "no GPU request in config"
	if api http://d/info | jq -e '.Runtimes.nvidia' > /dev/null; then
		skip "this Docker has a GPU runtime"
	fi
	run dcpipe run
	[ "$status" -eq 1 ] || fail "exit $status"
	assert_contains 'could not select device driver "" with capabilities: [[gpu]]'
	assert_contains "the stage asks for a GPU"
}

@test "docker: volumes_from shares the other stage's volume" {
	spec <<EOF
name: $P
volumes:
  v: {}
stages:
  writer:
    image: $IMG
    command: sh -c 'echo from-writer > /data/f'
    volumes: [v:/data]
  reader:
    image: $IMG
    command: sh -c 'cat /data/f; touch /data/g 2>&1; true'
    volumes_from: ["writer:ro"]
    depends_on: [writer]
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "reader | from-writer"
	assert_contains "Read-only file system"
}

@test "docker: platform is asked of the daemon when the container is created" {
	spec <<EOF
name: $P
stages:
  arm:
    image: $IMG
    command: "true"
    platform: linux/arm64
  native:
    image: $IMG
    command: "true"
    platform: linux/amd64
EOF
	[ "$(uname -m)" = x86_64 ] || skip "the test image is amd64"
	run dcpipe run native
	[ "$status" -eq 0 ] || fail "linux/amd64 refused"
	run dcpipe run arm
	[ "$status" -eq 1 ] || fail "exit $status"
	assert_contains "does not match the specified platform: wanted linux/arm64"
}

@test "docker: read_only with a secret given by value is refused before anything runs" {
	export RO_TOK=ro-value
	spec <<EOF
name: $P
secrets:
  tok: {environment: RO_TOK}
stages:
  first:
    image: $IMG
    command: "true"
  a:
    image: $IMG
    command: cat /run/secrets/tok
    secrets: [tok]
    read_only: true
EOF
	run dcpipe run
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains 'cpipe.yml:11:15: stage "a": secret "tok" is given by value, which the docker runtime copies into the container, and read_only: true refuses that'
	refute_contains "running first"
}

@test "docker: the runtime's warning shows once on stderr, as a warning event with --progress json, in the record" {
	spec <<EOF
name: $P
stages:
  a:
    image: $IMG
    command: echo hi
    deploy: {replicas: 2}
EOF
	assert_runtime_warning a \
		'cpipe.yml:6:24: stage "a": deploy.replicas: 2 asked for; cpipe runs one instance of a job, once' \
		dcpipe
}
