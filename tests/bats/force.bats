#!/usr/bin/env bats
# The scope of --force (the named stages only, or every selected one with
# --force-all or no names) and what --dry-run says it would do per stage.

load helpers

# prepare -> train -> evaluate; each appends its name to a ledger on a bind
# mount outside the volume, so a test sees which commands really ran.
chain() {
	mkdir -p ledger
	spec <<'EOF2'
volumes:
  work: {}
stages:
  prepare:
    command: sh -c 'echo prepare >> /ledger/log; echo raw > /vol/data.txt'
    volumes: [work:/vol, ./ledger:/ledger]
    outputs: [work:/data.txt]
  train:
    command: sh -c 'echo train >> /ledger/log; echo "lr=$$LR" > /vol/model.txt; cat /vol/data.txt >> /vol/model.txt'
    volumes: [work:/vol, ./ledger:/ledger]
    params: {lr: 1}
    environment: {LR: "${params.lr}"}
    inputs: [work:/data.txt]
    outputs: [work:/model.txt]
    depends_on: [prepare]
  evaluate:
    command: sh -c 'echo evaluate >> /ledger/log; wc -c < /vol/model.txt > /vol/score.txt'
    volumes: [work:/vol, ./ledger:/ledger]
    inputs: [work:/model.txt]
    outputs: [work:/score.txt]
    depends_on: [train]
EOF2
	run cpipe run
	[ "$status" -eq 0 ] || fail "first run failed"
	: > ledger/log
}

ledger() { tr '\n' ' ' < ledger/log; }

@test "run --force STAGE reruns only that stage; its upstream stays up to date" {
	chain
	run cpipe run --force evaluate
	[ "$status" -eq 0 ] || fail "forced run failed"
	[ "$(ledger)" = "evaluate " ] || fail "ran: $(ledger)"
	run cpipe --json show latest
	[ "$status" -eq 0 ] || fail "show failed"
	[ "$(echo "$output" | jq -r '[.stages[] | .name + "=" + .status] | join(" ")')" = \
		"prepare=skipped train=skipped evaluate=ran" ] || fail "record: $output"
}

@test "run --force-all STAGE reruns it and everything upstream" {
	chain
	run cpipe run --force-all evaluate
	[ "$status" -eq 0 ] || fail "forced run failed"
	[ "$(ledger)" = "prepare train evaluate " ] || fail "ran: $(ledger)"
}

@test "run --force with no stage names reruns every selected stage" {
	chain
	run cpipe run --force
	[ "$status" -eq 0 ] || fail "forced run failed"
	[ "$(ledger)" = "prepare train evaluate " ] || fail "ran: $(ledger)"
}

@test "--dry-run says per stage run and why, or skip, and runs nothing" {
	chain
	runs_before=$(ls .cpipe/runs | wc -l)
	sed -i 's/params: {lr: 1}/params: {lr: 2}/' cpipe.yml
	run cpipe run --dry-run
	[ "$status" -eq 0 ] || fail "dry run failed: $output"
	[[ "$output" =~ (^|$'\n')"prepare   skip    (up to date)"($'\n'|$) ]] || fail "prepare: $output"
	[[ "$output" =~ (^|$'\n')"train     run     params.lr 1 → 2"$'\n' ]] || fail "train: $output"
	[[ "$output" =~ (^|$'\n')"evaluate  run     upstream train is stale"$'\n' ]] || fail "evaluate: $output"
	assert_contains "$ sh -c 'echo train >> /ledger/log;"
	# The stage lines come in plan order.
	[ "$(grep -v '^ ' <<< "$output" | cut -d' ' -f1 | tr '\n' ' ')" = "prepare train evaluate " ] ||
		fail "order: $output"
	[ "$(ledger)" = "" ] || fail "dry run ran: $(ledger)"
	[ "$(ls .cpipe/runs | wc -l)" = "$runs_before" ] || fail "dry run wrote a run record"
	[ "$(cat "$(vol work)/model.txt" | head -1)" = "lr=1" ] || fail "dry run changed the volume"
}

@test "--dry-run --force STAGE says run --force for it, skip upstream; --json too" {
	chain
	run cpipe run --dry-run --force evaluate
	[ "$status" -eq 0 ] || fail "dry run failed: $output"
	[[ "$output" =~ (^|$'\n')"prepare   skip    (up to date)" ]] || fail "prepare: $output"
	[[ "$output" =~ (^|$'\n')"train     skip    (up to date)" ]] || fail "train: $output"
	[[ "$output" =~ (^|$'\n')"evaluate  run     --force" ]] || fail "evaluate: $output"
	run cpipe --json run --dry-run --force-all evaluate
	[ "$status" -eq 0 ] || fail "json dry run failed"
	[ "$(echo "$output" | jq -r '[.stages[] | .name + "=" + .action] | join(" ")')" = \
		"prepare=run train=run evaluate=run" ] || fail "json: $output"
	[ "$(ledger)" = "" ] || fail "dry run ran: $(ledger)"
}

@test "--dry-run says restore when the store holds the outputs for the key" {
	chain
	sed -i 's/params: {lr: 1}/params: {lr: 2}/' cpipe.yml
	cpipe run > /dev/null 2>&1 || fail "lr=2 run failed"
	sed -i 's/params: {lr: 2}/params: {lr: 1}/' cpipe.yml
	: > ledger/log
	run cpipe run --dry-run train
	[ "$status" -eq 0 ] || fail "dry run failed: $output"
	grep -Eq '^train +restore from run [0-9]' <<< "$output" || fail "train: $output"
	[ "$(ledger)" = "" ] || fail "dry run ran: $(ledger)"
}

@test "run --help lists --force-all" {
	run cpipe run --help
	[ "$status" -eq 0 ] || fail "help failed"
	assert_contains "--force-all"
}
