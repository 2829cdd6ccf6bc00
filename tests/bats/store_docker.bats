#!/usr/bin/env bats
# The artifact store through the Docker runtime: outputs are committed and
# restored through the volume's host mountpoint.

load helpers
load docker_helpers

store_spec() {
	mkdir -p ledger
	spec <<EOF2
name: $P
runtime: $RT
volumes:
  data: {}
stages:
  train:
    image: cpipe-test/busybox
    command: sh -c 'echo ran >> /ledger/train; mkdir -p /d/model; echo "lr=\$\$LR" > /d/model/w.txt'
    volumes: [data:/d, ./ledger:/ledger]
    params: {lr: 1}
    environment: {LR: "\${params.lr}"}
    outputs: [data:/model]
EOF2
}

@test "docker: reverting a param restores the outputs through the volume's mountpoint" {
	store_spec
	run cpipe run
	[ "$status" -eq 0 ] || fail "first run"
	first=$(cpipe runs --json | jq -r '.[0].id')
	run cpipe run --set train.lr=2
	[ "$status" -eq 0 ] || fail "second run"
	run cpipe run
	[ "$status" -eq 0 ] || fail "third run"
	assert_contains "train restored from run $first"
	[ "$(wc -l < ledger/train)" -eq 2 ] || fail "train ran $(wc -l < ledger/train) times"
	run cpipe verify
	[ "$status" -eq 0 ] || fail "verify after restore"
	run cpipe checkout latest~1
	[ "$status" -eq 0 ] || fail "checkout"
	run cpipe verify --json
	[ "$(jq length <<<"$output")" = 1 ] || fail "checkout of lr=2 should differ from the lock"
}
