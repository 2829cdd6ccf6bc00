#!/usr/bin/env bats
# A run with --set is an experiment: its record and the store keep its
# overrides and outputs, but cpipe.lock keeps describing the spec as
# written, so the working tree stays clean and a plain run brings the
# spec's outputs back from the store.

load helpers

# train appends to a ledger outside the volume (a bind mount), so a test
# can count how often its command really ran; evaluate reads its model.
pipeline() {
	mkdir -p bin ledger
	cat > bin/train.sh <<'EOF'
echo "lr=$LR" >> /ledger/train
echo "lr=$LR" > /vol/model.txt
EOF
	spec <<'EOF'
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
    command: sh -c 'wc -c < /vol/model.txt > /vol/score.txt'
    volumes: [vol:/vol]
    inputs: [vol:/model.txt]
    outputs: [vol:/score.txt]
EOF
}

ledger_lines() {
	wc -l < ledger/train | tr -d ' '
}

# The newest run record.
newest_record() {
	ls -t .cpipe/runs/*.json | head -n 1
}

@test "--set leaves cpipe.lock as the spec describes; a plain run restores the spec's outputs" {
	pipeline
	run_ok run
	cp -p cpipe.lock lock.before
	cp "$(vol vol)/model.txt" model.first
	inode=$(stat -c %i cpipe.lock)
	run_ok run --set train.lr=2
	assert_contains "cpipe: --set given: an experiment; cpipe.lock is left as the spec describes"
	cmp cpipe.lock lock.before || fail "the experiment changed cpipe.lock"
	[ "$(stat -c %i cpipe.lock)" = "$inode" ] || fail "the experiment rewrote cpipe.lock"
	[ "$(cat "$(vol vol)/model.txt")" = "lr=2" ] || fail "the experiment did not train with lr=2"
	[ "$(ledger_lines)" = 2 ] || fail "train ran $(ledger_lines) times, not 2"
	rec=$(newest_record)
	[ "$(jq -r '.overrides["train.lr"]' "$rec")" = 2 ] || fail "record lacks the override"
	[ "$(jq -r .experiment "$rec")" = true ] || fail "record does not say experiment"
	want=sha256:$(sha256sum < "$(vol vol)/model.txt" | cut -d' ' -f1)
	got=$(jq -r '.stages[] | select(.name == "train") | .outputs["vol:/model.txt"].digest' "$rec")
	[ "$got" = "$want" ] || fail "record digest $got, the experiment wrote $want"

	# The volume holds the experiment; status compares it with the lock.
	run cpipe status
	[[ "$output" =~ train\ +restorable\ output\ vol:/model.txt\ changed ]] ||
		fail "status does not say train is restorable because its output changed"

	run_ok run
	assert_contains "train restored from run "
	refute_contains "an experiment"
	[ "$(ledger_lines)" = 2 ] || fail "plain run retrained: $(ledger_lines) ledger lines"
	cmp "$(vol vol)/model.txt" model.first || fail "model is not the first run's"
	cmp cpipe.lock lock.before || fail "the plain run changed cpipe.lock"
	run_ok status --check

	run_ok run --set train.lr=2
	assert_contains "train restored from run "
	[ "$(ledger_lines)" = 2 ] || fail "the repeated experiment retrained"
	[ "$(cat "$(vol vol)/model.txt")" = "lr=2" ] || fail "experiment outputs not restored"
	cmp cpipe.lock lock.before || fail "the repeated experiment changed cpipe.lock"
}

@test "-q keeps the experiment note quiet" {
	pipeline
	run_ok run
	run_ok -q run --set train.lr=2
	refute_contains "an experiment"
}

@test "a --set aimed at a stage the run does not touch is no experiment" {
	pipeline
	# Only evaluate's own param would make it one; train.lr is elsewhere.
	run_ok run
	cp cpipe.lock lock.before
	run_ok run --set train.lr=2 --no-deps evaluate
	refute_contains "an experiment"
}

@test "after an experiment in a git repository cpipe.lock is unmodified" {
	command -v git >/dev/null || skip "no git"
	pipeline
	run_ok run
	git init -q .
	git -c user.name=t -c user.email=t@t add cpipe.yml cpipe.lock bin
	git -c user.name=t -c user.email=t@t commit -q -m spec
	run_ok run --set train.lr=2
	[ -z "$(git status --porcelain cpipe.lock)" ] || fail "git: $(git status --porcelain cpipe.lock)"
}
