#!/usr/bin/env bats
# Compose keys of resources, security and lifecycle on the local runtime,
# each observed from inside the running stage (or, for what Linux does not
# give a sandbox, as one warning naming the key and where it is written).

load helpers

# The stage's output lines (its log as cpipe prints it: "a | ...").
stage_out() {
	printf '%s\n' "$output" | sed -n "s/^$1 *| //p"
}

@test "ulimits: nofile soft and hard are the stage's limits" {
	spec <<'EOF'
stages:
  a:
    command: sh -c 'echo soft=$(ulimit -Sn) hard=$(ulimit -Hn)'
    ulimits:
      nofile: {soft: 321, hard: 654}
EOF
	run_ok run
	assert_contains "a | soft=321 hard=654"
}

@test "read_only: the root refuses writes; volumes, tmpfs and /dev keep theirs" {
	spec <<'EOF'
volumes:
  v: {}
stages:
  a:
    command: sh -c 'touch /ro-probe 2>&1; echo w > /v/ok && echo volume-ok; echo w > /scratch/ok && echo tmpfs-ok; echo x > /dev/null && echo dev-ok'
    volumes: [v:/v]
    tmpfs: /scratch
    read_only: true
EOF
	run_ok run
	assert_contains "Read-only file system"
	assert_contains "a | volume-ok"
	assert_contains "a | tmpfs-ok"
	assert_contains "a | dev-ok"
	[ ! -e /ro-probe ] || fail "the write reached the host"
}

@test "tmpfs: each path is a tmpfs of its own, with its size option" {
	spec <<'EOF'
stages:
  a:
    command: sh -c 'grep -E " /(scratch|cache) " /proc/mounts'
    tmpfs: ["/scratch:size=1m", /cache]
EOF
	run_ok run
	stage_out a | grep -q '^tmpfs /scratch tmpfs .*size=1024k' || fail "no 1 MiB tmpfs at /scratch"
	stage_out a | grep -q '^tmpfs /cache tmpfs ' || fail "no tmpfs at /cache"
}

@test "shm_size: /dev/shm is a tmpfs of that size" {
	spec <<'EOF'
stages:
  a:
    command: sh -c 'df -k /dev/shm | tail -1'
    shm_size: 32m
EOF
	run_ok run
	stage_out a | awk '{print $2}' | grep -qx 32768 || fail "/dev/shm is not 32 MiB"
}

@test "ipc: private gives the stage an IPC namespace of its own; host keeps the host's" {
	host=$(readlink /proc/self/ns/ipc)
	spec <<'EOF'
stages:
  priv:
    command: readlink /proc/self/ns/ipc
    ipc: private
  shared:
    command: readlink /proc/self/ns/ipc
    ipc: host
EOF
	run_ok run
	[ "$(stage_out priv)" != "$host" ] || fail "ipc: private shares the host's namespace"
	[ "$(stage_out shared)" = "$host" ] || fail "ipc: host is not the host's namespace"
}

@test "ipc: service:NAME warns once, with file:line, and the stage gets a private namespace" {
	spec <<'EOF'
stages:
  a:
    command: "true"
    ipc: "service:db"
EOF
	run_ok run
	[ "$(grep -c 'warning: cpipe.yml:4:5: stage "a": ipc:' <<< "$output")" = 1 ] || fail "no single ipc warning"
}

@test "cap_drop: NET_RAW leaves the stage's effective capabilities" {
	spec <<'EOF'
stages:
  dropped:
    command: sh -c 'grep CapEff /proc/self/status'
    cap_drop: [NET_RAW]
  kept:
    command: sh -c 'grep CapEff /proc/self/status'
EOF
	run_ok run
	bit() { echo $(( (0x$(stage_out "$1" | awk '{print $2}') >> 13) & 1 )); }
	[ "$(bit kept)" = 1 ] || fail "a stage without cap_drop has no CAP_NET_RAW"
	[ "$(bit dropped)" = 0 ] || fail "cap_drop: [NET_RAW] left CAP_NET_RAW"
}

@test "pids_limit: the stage cannot have more processes than that" {
	[ -e /sys/fs/cgroup/pids/cgroup.procs ] || [ -e /sys/fs/cgroup/cgroup.controllers ] ||
		skip "no pids cgroup here"
	spec <<'EOF'
stages:
  a:
    command: sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 3 & done; echo spawned; kill $(jobs -p) 2>/dev/null; true'
    pids_limit: 4
EOF
	run cpipe run
	grep -qi "fork" <<< "$output" || fail "the stage forked ten processes under pids_limit: 4"
	[ -z "$(ls /sys/fs/cgroup/pids/cpipe 2>/dev/null | grep '^[0-9]')" ] || fail "a cgroup was left behind"
}

@test "stop_signal: cpipe down stops the service with that signal" {
	spec <<'EOF'
volumes:
  v: {}
stages:
  svc:
    service: true
    command: sh -c 'trap "echo got-usr1 > /v/sig; exit 0" USR1; trap "echo got-term > /v/sig; exit 0" TERM; echo up > /v/up; while true; do sleep 0.1; done'
    volumes: [v:/v]
    stop_signal: SIGUSR1
EOF
	run_ok up svc
	wait_for_file .cpipe/volumes/v/up || fail "service did not start"
	run_ok down
	[ "$(cat .cpipe/volumes/v/sig)" = got-usr1 ] || fail "got $(cat .cpipe/volumes/v/sig 2>&1)"
}

@test "stop_grace_period: the service gets that long to finish before SIGKILL" {
	spec <<'EOF'
volumes:
  v: {}
stages:
  patient:
    service: true
    command: sh -c 'trap "sleep 1; echo finished > /v/patient; exit 0" TERM; echo up > /v/up1; while true; do sleep 0.1; done'
    volumes: [v:/v]
    stop_grace_period: 20s
  hasty:
    service: true
    command: sh -c 'trap "sleep 1; echo finished > /v/hasty; exit 0" TERM; echo up > /v/up2; while true; do sleep 0.1; done'
    volumes: [v:/v]
    stop_grace_period: 200ms
EOF
	run_ok up patient hasty
	wait_for_file .cpipe/volumes/v/up1 && wait_for_file .cpipe/volumes/v/up2 || fail "services did not start"
	run_ok down
	[ -e .cpipe/volumes/v/patient ] || fail "stop_grace_period: 20s did not let the service finish"
	[ ! -e .cpipe/volumes/v/hasty ] || fail "stop_grace_period: 200ms let the service run its 1s trap"
}

@test "restart: on-failure restarts a crashed service, on-failure:N stops after N restarts" {
	spec <<'EOF'
volumes:
  v: {}
stages:
  flaky:
    service: true
    command: sh -c 'echo start >> /v/flaky; [ $$(wc -l < /v/flaky) -ge 2 ] || exit 3; echo up > /v/up; while true; do sleep 0.1; done'
    volumes: [v:/v]
    restart: on-failure
  broken:
    service: true
    command: sh -c 'echo start >> /v/broken; exit 4'
    volumes: [v:/v]
    restart: on-failure:2
EOF
	run_ok up flaky
	wait_for_file .cpipe/volumes/v/up || fail "the service was not restarted"
	[ "$(wc -l < .cpipe/volumes/v/flaky)" = 2 ] || fail "started $(wc -l < .cpipe/volumes/v/flaky) times"
	run_ok logs flaky
	assert_contains "exited with 3; restarting it (restart 1)"
	run_ok down
	run cpipe up broken
	for _ in $(seq 50); do [ "$(wc -l < .cpipe/volumes/v/broken)" -ge 3 ] && break; sleep 0.1; done
	sleep 1
	[ "$(wc -l < .cpipe/volumes/v/broken)" = 3 ] || fail "on-failure:2 started $(wc -l < .cpipe/volumes/v/broken) times"
	cpipe down || true
}

@test "secrets and configs from files and values are read-only in the stage and in no .cpipe file" {
	echo "s3cr3t-$RANDOM-value" > token.txt
	secret=$(cat token.txt)
	export CFG_VALUE="cfg-from-env"
	spec <<'EOF'
secrets:
  token: {file: ./token.txt}
configs:
  app: {content: "threads=4"}
  env_cfg: {environment: CFG_VALUE}
volumes:
  v: {}
stages:
  a:
    command: sh -c 'cp /run/secrets/token /v/copy; cat /etc/app.conf; echo; cat /env_cfg; echo; echo x > /run/secrets/token 2>&1 || echo secret-ro'
    volumes: [v:/v]
    secrets: [token]
    configs:
      - {source: app, target: /etc/app.conf}
      - env_cfg
EOF
	run_ok run
	[ "$(cat .cpipe/volumes/v/copy)" = "$secret" ] || fail "/run/secrets/token is not the file's content"
	assert_contains "a | threads=4"
	assert_contains "a | cfg-from-env"
	assert_contains "a | secret-ro"
	refute_contains "$secret"
	! grep -r -- "$secret" .cpipe/runs .cpipe/logs .cpipe/cache cpipe.lock || fail "the secret's value is in a file"
	run_ok config --json
	refute_contains "$secret"
	[ "$(jq -r '.stages.a.secrets[0].target' <<< "$output")" = /run/secrets/token ] || fail "config lacks the secret's target"
	[ "$(jq -c '.secrets.token' <<< "$output")" = "{\"file\":\"$PROJ/token.txt\"}" ] || fail "config lacks the top-level secret"
	[ "$(jq -r '.configs.env_cfg.environment' <<< "$output")" = CFG_VALUE ] || fail "config lacks the config's variable"
	cpipe config > printed.yml
	run_ok -f printed.yml config
}

@test "an undeclared secret is refused before anything runs, with file:line:col" {
	spec <<'EOF'
stages:
  a:
    command: "true"
    secrets: [nope]
EOF
	run cpipe run
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains 'cpipe.yml:4:15: stage "a": secret "nope" is not declared under the top-level "secrets:"'
}

# Stage "a" with the key line $1 is refused (exit 2) with message $2.
refused_key() {
	printf 'stages:\n  a:\n    command: "true"\n    %s\n' "$1" > cpipe.yml
	run cpipe config
	[ "$status" -eq 2 ] || fail "$1: exit $status"
	assert_contains "$2"
}

@test "bad values of the keys are refused with file:line:col" {
	refused_key 'ulimits: {nofiles: 10}' 'cpipe.yml:4:15: stage "a": ulimits: unknown limit "nofiles" (did you mean "nofile"?)'
	refused_key 'stop_signal: SIGFOO' 'cpipe.yml:4:18: stage "a": stop_signal "SIGFOO" is not a signal'
	refused_key 'cap_drop: [NET_RAWW]' 'cpipe.yml:4:16: stage "a": cap_drop: unknown capability "NET_RAWW"'
	refused_key 'shm_size: lots' 'cpipe.yml:4:15: stage "a": key "shm_size": "lots" is not a size'
	refused_key 'restart: sometimes' 'cpipe.yml:4:14: stage "a": restart must be no, always, on-failure[:N] or unless-stopped, got sometimes'
}

@test "runtime: nvidia is a GPU request: in the record, and a warning without a GPU" {
	[ ! -e /dev/nvidia0 ] && [ ! -e /dev/nvidiactl ] && [ ! -e /dev/dri ] || skip "this host has a GPU"
	spec <<'EOF'
stages:
  a:
    command: "true"
    runtime: nvidia
    labels: {team: vision}
  b:
    command: "true"
    deploy:
      resources:
        reservations:
          devices: [{capabilities: [gpu], count: 1}]
EOF
	run_ok run
	[ "$(grep -c 'warning: cpipe.yml:4:5: stage "a": runtime: the stage asks for a GPU (all) but this host has none' <<< "$output")" = 1 ] || fail "no single GPU warning for a"
	assert_contains 'stage "b": gpus: the stage asks for a GPU (1)'
	rec=$(ls .cpipe/runs/*.json)
	[ "$(jq -c '.stages[] | select(.name == "a") | .gpus' "$rec")" = '["all"]' ] || fail "record lacks a's GPU request"
	[ "$(jq -c '.stages[] | select(.name == "b") | .gpus' "$rec")" = '["1"]' ] || fail "record lacks b's GPU request"
	[ "$(jq -r '.stages[] | select(.name == "a") | .labels.team' "$rec")" = vision ] || fail "record lacks the labels"
}

@test "platform other than the host's, deploy.replicas on a job and init: false warn once each" {
	spec <<'EOF'
stages:
  a:
    command: "true"
    platform: linux/s390x
    init: false
    deploy: {replicas: 3}
EOF
	run_ok run
	[ "$(grep -c 'warning: cpipe.yml:4:5: stage "a": platform: "linux/s390x" is not this host' <<< "$output")" = 1 ] || fail "platform warning"
	[ "$(grep -c 'warning: cpipe.yml:6:24: stage "a": deploy.replicas: 3 asked for; cpipe runs one instance of a job' <<< "$output")" = 1 ] || fail "replicas warning"
	[ "$(grep -c 'warning: cpipe.yml:5:5: stage "a": init: false' <<< "$output")" = 1 ] || fail "init warning"
}

@test "a runtime's warning goes through the run: once on stderr, a JSON event with --progress json, in the run record" {
	spec <<'EOF'
stages:
  a:
    command: echo hi
    deploy: {replicas: 2}
EOF
	assert_runtime_warning a \
		'cpipe.yml:4:24: stage "a": deploy.replicas: 2 asked for; cpipe runs one instance of a job, once' \
		cpipe
}

@test "volumes_from: the stage mounts the other stage's volumes, :ro read-only" {
	mkdir data && echo shared > data/f
	spec <<'EOF'
stages:
  owner:
    command: "true"
    volumes: [./data:/data]
  reader:
    command: sh -c 'cat /data/f; echo x > /data/f 2>&1 || echo data-ro'
    volumes_from: ["owner:ro"]
EOF
	run_ok run reader
	assert_contains "reader | shared"
	assert_contains "reader | data-ro"
}

@test "config --json shows the keys; read_only changes the cache key, shm_size does not" {
	spec <<'EOF'
volumes:
  v: {}
stages:
  a:
    command: sh -c 'echo hi > /v/out'
    volumes: [v:/v]
    outputs: [v:/out]
    shm_size: 16m
    cap_drop: [NET_RAW]
    stop_signal: SIGINT
    restart: "no"
EOF
	run_ok config --json
	[ "$(jq -c '.stages.a | [.shm_size, .cap_drop, .stop_signal]' <<< "$output")" = '[16777216,["NET_RAW"],"SIGINT"]' ] || fail "config output"
	run_ok run
	sed -i 's/shm_size: 16m/shm_size: 32m/' cpipe.yml
	run_ok status
	[[ "$output" =~ a\ +fresh ]] || fail "shm_size made the stage stale"
	echo "    read_only: true" >> cpipe.yml
	run_ok status
	[[ "$output" =~ a\ +stale ]] || fail "read_only did not make the stage stale"
}
