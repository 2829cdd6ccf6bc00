#!/usr/bin/env bats
# Remotes through the Docker runtime: a teammate's docker run is pushed to
# nginx; a fresh clone's run --pull restores it into new Docker volumes
# through their mountpoints and runs nothing.

load helpers
load docker_helpers
load remote_helpers

eval "docker_setup_file() $(declare -f setup_file | tail -n +2)"

setup_file() {
	docker_setup_file
	[ "$DOCKER_READY" = 1 ] || return 0
	remote_servers_start
}

teardown_file() {
	[ "$DOCKER_READY" = 1 ] || return 0
	remote_servers_stop
}

docker_pipeline() {
	mkdir -p bin ledger
	cat > bin/train.sh <<'EOF'
echo train >> /ledger/runs
mkdir -p /d/model
echo "lr=$LR" > /d/model/w.txt
head -c 300000 /dev/urandom > /d/model/blob
EOF
	spec <<EOF
name: $P
runtime: $RT
volumes:
  data: {}
stages:
  train:
    image: cpipe-test/busybox
    command: sh /app/train.sh
    volumes: [data:/d, ./bin:/app:ro, ./ledger:/ledger]
    params: {lr: 1}
    environment: {LR: "\${params.lr}"}
    outputs: [data:/model]
  eval:
    image: cpipe-test/busybox
    command: sh -c 'echo eval >> /ledger/runs; cat /d/model/w.txt > /d/score'
    volumes: [data:/d, ./ledger:/ledger]
    inputs: [data:/model]
    outputs: [data:/score]
EOF
}

# The host directory behind Docker volume $1 of this test's project.
mountpoint() {
	api "http://d/volumes/$P""_$1" | jq -r .Mountpoint
}

@test "docker: a fresh clone's run --pull from nginx restores into new volumes and runs nothing" {
	docker_pipeline
	run cpipe run
	[ "$status" -eq 0 ] || fail "teammate's run"
	made=$(sha256sum "$(mountpoint data)/model/blob" | cut -d' ' -f1)
	export CPIPE_REMOTE
	CPIPE_REMOTE=$(remote_url http)
	run cpipe push
	[ "$status" -eq 0 ] || fail "push"
	# The clone is another project on the same daemon: its own volumes.
	api -X DELETE "http://d/volumes/$P""_data?force=1" > /dev/null
	fresh_clone
	run cpipe run --pull
	[ "$status" -eq 0 ] || fail "run --pull"
	assert_contains "train restored from run"
	assert_contains "eval restored from run"
	[ ! -s ledger/runs ] || fail "a stage ran: $(cat ledger/runs)"
	[ "$(sha256sum "$(mountpoint data)/model/blob" | cut -d' ' -f1)" = "$made" ] ||
		fail "pulled blob differs"
	[ "$(cat "$(mountpoint data)/score")" = "lr=1" ] || fail "eval's output not restored"
	run cpipe status --check
	[ "$status" -eq 0 ] || fail "status --check after run --pull"
}

@test "docker: pull checks the locked outputs out into the volume" {
	docker_pipeline
	run cpipe run
	[ "$status" -eq 0 ] || fail "teammate's run"
	run cpipe push --remote "$(remote_url dir)"
	[ "$status" -eq 0 ] || fail "push"
	api -X DELETE "http://d/volumes/$P""_data?force=1" > /dev/null
	fresh_clone
	run cpipe pull --remote "$(remote_url dir)"
	[ "$status" -eq 0 ] || fail "pull"
	[ "$(cat "$(mountpoint data)/model/w.txt")" = "lr=1" ] || fail "model not checked out"
	run cpipe status --check
	[ "$status" -eq 0 ] || fail "status --check after pull"
}
