#!/usr/bin/env bats
# lineage names the run that produced the very digest it shows, also when
# experiments (--set runs), restores from the store and forced reruns that
# make another digest under the same key are interleaved.

load helpers

# train writes a model that differs every time it really runs (it counts
# its runs in a ledger outside the volume), so a --force rerun makes
# another digest under the same key; evaluate scores the model.
pipeline() {
	mkdir -p bin ledger
	cat > bin/train.sh <<'EOS'
echo "lr=$LR" >> /ledger/train
echo "lr=$LR run=$(wc -l < /ledger/train)" > /vol/model.txt
EOS
	spec <<'EOS'
volumes:
  vol: {}
stages:
  train:
    command: sh /app/train.sh
    volumes: [vol:/vol, ./bin:/app:ro, ./ledger:/ledger]
    params: {lr: 1}
    environment: {LR: "${params.lr}"}
    outputs: [vol:/model.txt]
  evaluate:
    command: sh -c 'cat /vol/model.txt /vol/model.txt > /vol/score.txt'
    volumes: [vol:/vol]
    inputs: [vol:/model.txt]
    outputs: [vol:/score.txt]
EOS
}

newest() {
	cpipe runs -q | head -1
}

model_digest() {
	echo "sha256:$(sha256sum < "$(vol vol)/model.txt" | cut -d' ' -f1)"
}

# The run lineage names for stage $2 in the tree of $1.
run_of() {
	cpipe lineage --json "$1" | jq -r --arg s "$2" '[.. | objects | select(.stage? == $s) | .run] | first'
}

@test "lineage names the producing run after experiments, restores and a forced rerun" {
	pipeline
	run_ok run
	r1=$(newest)
	a1=$(model_digest)

	run_ok run --set train.lr=2
	r2=$(newest)
	b=$(model_digest)
	[ "$b" != "$a1" ] || fail "the experiment made the same model"

	# A plain run restores the spec's model from r1: r1 still made it.
	run_ok run
	r3=$(newest)
	assert_contains "train restored from run $r1"
	[ "$(run_of vol:/model.txt train)" = "$r1" ] || fail "model attributed to $(run_of vol:/model.txt train), not $r1 (r3 $r3 only restored it)"
	[ "$(run_of vol:/score.txt evaluate)" = "$r1" ] || fail "score not attributed to $r1"
	run_ok lineage vol:/score.txt
	assert_contains "stage evaluate  run $r1"
	assert_contains "stage train  run $r1"
	refute_contains "$r3"
	refute_contains "$r2"

	# The experiment's model is not in the lock; its digest still finds r2.
	[ "$(run_of "$b" train)" = "$r2" ] || fail "experiment model attributed to $(run_of "$b" train)"
	run_ok lineage "${b:7:16}"
	[[ "$(head -1 <<<"$output")" == "vol:/model.txt  ${b:7:12}"* ]] || fail "root is not the experiment's model"
	assert_contains "stage train  run $r2"

	# Same key, another digest: the forced rerun made the locked model now.
	run_ok run --force train evaluate
	r4=$(newest)
	a2=$(model_digest)
	[ "$a2" != "$a1" ] || fail "the forced rerun made the same model"
	[ "$(run_of vol:/model.txt train)" = "$r4" ] || fail "new model attributed to $(run_of vol:/model.txt train)"
	# ... and the first model, by its digest, is still r1's, not r4's.
	[ "$(run_of "$a1" train)" = "$r1" ] || fail "first model attributed to $(run_of "$a1" train), not $r1"

	# Repeating the experiment restores its model from r2; a plain run
	# then restores r4's. Neither restoring run is named.
	run_ok run --set train.lr=2
	r5=$(newest)
	assert_contains "train restored from run $r2"
	[ "$(model_digest)" = "$b" ] || fail "experiment model not restored"
	run_ok run
	r6=$(newest)
	assert_contains "train restored from run $r4"
	[ "$(model_digest)" = "$a2" ] || fail "spec model not restored"
	[ "$(run_of vol:/model.txt train)" = "$r4" ] || fail "model attributed to $(run_of vol:/model.txt train), not $r4"
	[ "$(run_of vol:/score.txt evaluate)" = "$r4" ] || fail "score attributed to $(run_of vol:/score.txt evaluate), not $r4"
	[ "$(run_of "$b" train)" = "$r2" ] || fail "experiment model attributed to $(run_of "$b" train) after r5 $r5"
	run_ok lineage vol:/score.txt
	refute_contains "$r5"
	refute_contains "$r6"
	# Skipped stages of a later run reuse what the producing run made.
	run_ok run
	[ "$(jq -r '.stages[] | select(.name == "train") | .reused_from' ".cpipe/runs/$(newest).json")" = "$r4" ] ||
		fail "train's reuse not traced to $r4"
}

@test "a deterministic rerun is listed as a reproduction of the first producer" {
	pipeline
	# A model that does not depend on the ledger: every run makes the same.
	sed -i 's/ run=$(wc -l < \/ledger\/train)//' bin/train.sh
	run_ok run
	r1=$(newest)
	run_ok run --force train
	r2=$(newest)
	run_ok lineage --json vol:/model.txt
	[ "$(jq -r .produced_by.run <<<"$output")" = "$r1" ] || fail "first producer not named"
	[ "$(jq -c .produced_by.reproduced_by <<<"$output")" = "[\"$r2\"]" ] || fail "reproduction not listed"
	run_ok lineage vol:/model.txt
	assert_contains "stage train  run $r1"
	assert_contains "(reproduced by 1 later run)"
}

@test "lineage of a digest no run and no lock holds exits 2" {
	pipeline
	run_ok run
	run cpipe lineage 0123456789abcdef0123
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains 'no artifact or digest "0123456789abcdef0123"'
}
