#!/usr/bin/env bats
# The artifact store on the local runtime: outputs committed as they are
# hashed, restored from the run cache instead of rerunning, checked out
# from a run or a git revision, and garbage-collected.

load helpers

# train appends to a ledger outside the volume (a bind mount), so a test
# can count how often its command really ran, and writes a model
# directory holding the learning rate.
pipeline() {
	mkdir -p bin ledger
	cat > bin/train.sh <<'EOF'
echo ran >> /ledger/train
mkdir -p /vol/model/sub
echo "lr=$LR" > /vol/model/weights.txt
echo "nested" > /vol/model/sub/extra.txt
ln -sf weights.txt /vol/model/latest
printf '{"lr": %s}\n' "$LR" > /vol/metrics.json
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
    outputs: [vol:/model]
    metrics: [vol:/metrics.json]
EOF
}

# A git repository whose first commit locks lr=1 ($first); the spec then
# says lr=3 and has been run.
two_revisions() {
	pipeline
	git init -q . && git config user.email t@example.com && git config user.name t
	run_ok run
	git add cpipe.yml cpipe.lock bin && git commit -qm first
	first=$(git rev-parse HEAD)
	sed -i 's/lr: 1/lr: 3/' cpipe.yml
	run_ok run
}

ledger_lines() {
	wc -l < ledger/train | tr -d ' '
}

model() {
	echo "$(vol vol)/model"
}

# Every object's sha256 is its name.
objects_sound() {
	local f name
	while IFS= read -r f; do
		name=$(basename "$(dirname "$f")")$(basename "$f")
		[ "$(sha256sum < "$f" | cut -d' ' -f1)" = "$name" ] || { echo "torn object $f"; return 1; }
	done < <(find .cpipe/store/objects -type f)
}

@test "reverting a param restores the earlier outputs instead of running again" {
	pipeline
	run_ok run
	cp -a "$(model)" first
	run_ok run --set train.lr=2
	[ "$(cat "$(model)/weights.txt")" = "lr=2" ] || fail "second run wrote lr=2"
	run_ok run
	assert_contains "train restored from run "
	assert_contains "(key sha256:"
	[ "$(ledger_lines)" = 2 ] || fail "train ran $(ledger_lines) times, not 2"
	diff -r first "$(model)" || fail "restored model differs from the first run's"
	[ "$(readlink "$(model)/latest")" = weights.txt ] || fail "symlink not restored"
	[ "$(jq -r .lr "$(vol vol)/metrics.json")" = 1 ] || fail "metrics not restored"
	run_ok verify
	run_ok status --check
	run_ok show latest --json
	[ "$(jq -r '.stages[0].status' <<<"$output")" = restored ] || fail "record says restored"
	run_ok runs --json
	[ "$(jq -c '.[0].stages | [.ran, .restored]' <<<"$output")" = "[0,1]" ] || fail "runs counts"
}

@test "--force runs the stage even when the store could restore it" {
	pipeline
	run_ok run
	run_ok run --set train.lr=2
	run_ok run --force
	refute_contains "restored from run"
	[ "$(ledger_lines)" = 3 ] || fail "train ran $(ledger_lines) times, not 3"
}

@test "status says a stale stage is restorable and from which run" {
	pipeline
	run_ok run
	first=$(cpipe runs --json | jq -r '.[0].id')
	run_ok run --set train.lr=2
	run_ok status
	assert_contains "train  restorable"
	assert_contains "restorable from run $first"
	run_ok status --json
	[ "$(jq -r '.stages[0].state' <<<"$output")" = restorable ] || fail "json state"
}

@test "checkout of an earlier run puts its outputs back with that run's digests" {
	pipeline
	run_ok run
	first=$(cpipe runs --json | jq -r '.[0].id')
	run_ok run --set train.lr=2
	run_ok checkout "${first%??}"
	[ "$(cat "$(model)/weights.txt")" = "lr=1" ] || fail "model not the first run's"
	# The --set run was an experiment: the lock still names the first
	# run's outputs, which are back.
	run_ok verify
	run_ok checkout latest
	[ "$(cat "$(model)/weights.txt")" = "lr=2" ] || fail "latest not restored"
	want=$(cpipe show latest --json | jq -r '.stages[0].outputs["vol:/model"].digest')
	# verify reports the experiment's digest as what it found.
	run cpipe verify --json
	[ "$(jq -r '.[] | select(.artifact == "vol:/model") | .actual' <<<"$output")" = "$want" ] ||
		fail "restored digest is not the experiment's $want"
}

@test "checkout of a git revision restores the outputs its cpipe.lock names" {
	two_revisions
	rev=$first
	[ "$(cat "$(model)/weights.txt")" = "lr=3" ] || fail "second run wrote lr=3"
	run_ok checkout "$rev"
	assert_contains "cpipe.lock at that revision"
	[ "$(cat "$(model)/weights.txt")" = "lr=1" ] || fail "model not the committed one"
	git show "$rev:cpipe.lock" > old.lock
	[ "$(jq -r '.stages.train.outputs["vol:/model"].digest' old.lock)" = \
	  "$(cpipe verify --json | jq -r '.[] | select(.artifact == "vol:/model") | .actual')" ] ||
		fail "digest differs from the committed lock's"
	run cpipe checkout no-such-rev
	[ "$status" -eq 2 ] || fail "unknown revision exit $status"
	assert_contains "not a run"
}

@test "a missing object fails the checkout naming stage and artifact, changing nothing" {
	pipeline
	run_ok run
	first=$(cpipe runs --json | jq -r '.[0].id')
	run_ok run --set train.lr=2
	d=$(cpipe show "$first" --json | jq -r '.stages[0].outputs["vol:/model"].digest')
	# The first run's metrics file is the object to lose: staged after
	# its model, which must not be put in place either.
	obj=$(printf '{"lr": 1}\n' | sha256sum | cut -d' ' -f1)
	rm ".cpipe/store/objects/sha256/${obj:0:2}/${obj:2}"
	before=$(cd "$(vol vol)" && find . -printf '%p %s\n' | sort; cat model/weights.txt metrics.json)
	run cpipe checkout "$first"
	[ "$status" -ne 0 ] || fail "checkout succeeded without its object"
	assert_contains 'stage "train": vol:/metrics.json'
	assert_contains "sha256:$obj"
	assert_contains "nothing was changed"
	after=$(cd "$(vol vol)" && find . -printf '%p %s\n' | sort; cat model/weights.txt metrics.json)
	[ "$before" = "$after" ] || fail "the volume changed: $before // $after"
	[ -n "$d" ]
	# With its object gone the run cache cannot restore either: train runs.
	run_ok run
	refute_contains "restored from"
	[ "$(ledger_lines)" = 3 ] || fail "train should have run again"
}

@test "kill -9 while an output is being committed leaves no torn object" {
	mkdir -p bin
	cat > bin/big.sh <<'EOF'
head -c 400000000 /dev/zero > /vol/big.bin
EOF
	spec <<'EOF'
volumes:
  vol: {}
stages:
  big:
    command: sh /app/big.sh
    volumes: [vol:/vol, ./bin:/app:ro]
    outputs: [vol:/big.bin]
EOF
	"$CPIPE_BIN" run >/dev/null 2>&1 &
	pid=$!
	for ((i = 0; i < 400; i++)); do
		[ -n "$(ls .cpipe/store/tmp 2>/dev/null)" ] && break
		sleep 0.025
	done
	[ -n "$(ls .cpipe/store/tmp)" ] || { kill -9 $pid; fail "the commit was never seen"; }
	kill -9 $pid
	wait $pid || true
	objects_sound
	# The temporary of the killed writer is swept; a new run stores it whole.
	run_ok run
	[ -z "$(ls .cpipe/store/tmp)" ] || fail "temporaries left: $(ls .cpipe/store/tmp)"
	objects_sound
	obj=$(sha256sum < "$(vol vol)/big.bin" | cut -d' ' -f1)
	[ -f ".cpipe/store/objects/sha256/${obj:0:2}/${obj:2}" ] || fail "big.bin not stored"
}

@test "gc frees what nothing refers to; --dry-run frees nothing; the lock stays restorable" {
	pipeline
	run_ok run
	run_ok run --set train.lr=2
	run_ok run --set train.lr=5
	n=$(find .cpipe/store/objects -type f | wc -l)
	run_ok gc --keep-runs 1 --dry-run --json
	would=$(jq .objects <<<"$output")
	[ "$would" -gt 0 ] || fail "dry run found nothing to free"
	[ "$(find .cpipe/store/objects -type f | wc -l)" = "$n" ] || fail "--dry-run removed objects"
	run_ok gc --keep-runs 1 --json
	[ "$(jq .objects <<<"$output")" = "$would" ] || fail "gc freed other than the dry run said"
	[ "$(find .cpipe/store/objects -type f | wc -l)" = "$((n - would))" ] || fail "objects left"
	objects_sound
	# lr=2's outputs are gone with its run: repeating it trains again.
	run_ok run --set train.lr=2
	refute_contains "restored from"
	# The lock (lr=1: --set runs leave it alone) is restorable after gc.
	run_ok gc --keep-runs 0
	rm -rf "$(model)"
	run_ok status
	assert_contains "train  restorable"
	count=$(ledger_lines)
	run_ok run
	assert_contains "restored from run"
	[ "$(ledger_lines)" = "$count" ] || fail "train ran instead of being restored: $count -> $(ledger_lines)"
	run_ok verify
}

@test "gc prunes the records and logs of old runs, keeps the lock's run, and verify still passes" {
	pipeline
	run_ok run
	locked=$(cpipe runs --json | jq -r '.[0].id')
	run_ok run --set train.lr=2
	run_ok run --set train.lr=5
	last=$(cpipe runs --json | jq -r '.[0].id') # newest first
	[ "$(ls .cpipe/runs | wc -l)" = 3 ] || fail "three records"
	run_ok gc --keep-runs 1 --dry-run --json
	[ "$(jq .runs <<<"$output")" = 1 ] || fail "dry run: one record to prune"
	[ "$(ls .cpipe/runs | wc -l)" = 3 ] || fail "--dry-run removed a record"
	run_ok gc --keep-runs 1 --json
	[ "$(jq .runs <<<"$output")" = 1 ] || fail "one record pruned"
	# Left: the last run and the run that made the locked outputs.
	[ "$(ls .cpipe/runs | sort | tr '\n' ' ')" = "$locked.json $last.json " ] ||
		fail "records left: $(ls .cpipe/runs)"
	[ "$(ls .cpipe/logs | sort | tr '\n' ' ')" = "$locked $last " ] ||
		fail "logs left: $(ls .cpipe/logs)"
	run_ok show "$locked"
	# The volume holds the last experiment's outputs; the lock's come back
	# from the store.
	run_ok run
	assert_contains "train restored from run $locked"
	run_ok verify
	run_ok lineage vol:/model
	assert_contains "stage train"
}

@test "gc --keep-rev keeps what cpipe.lock at a git revision names, so it can be checked out" {
	two_revisions
	git commit -qam second
	run_ok gc --keep-runs 0 --keep-rev "$first" --json
	run_ok checkout "$first"
	[ "$(cat "$(model)/weights.txt")" = "lr=1" ] || fail "first revision's model not restored"
	run_ok checkout HEAD
	run_ok verify
	# Without --keep-rev the first revision's outputs are garbage.
	run_ok gc --keep-runs 0 --json
	[ "$(jq .objects <<<"$output")" -gt 0 ] || fail "nothing freed without --keep-rev"
	run cpipe checkout "$first"
	[ "$status" -ne 0 ] || fail "checkout of a collected revision succeeded"
	assert_contains "is not in the store"
	run_ok verify
	run cpipe gc --keep-rev no-such-rev
	[ "$status" -eq 2 ] || fail "unknown revision: exit $status"
	assert_contains "gc --keep-rev no-such-rev"
}

@test "gc drops stat-cache entries of files that are gone" {
	pipeline
	run_ok run
	sleep 0.3
	run_ok status # caches the outputs' digests, now old enough
	entries() { od -An -t u8 -j 16 -N 8 .cpipe/cache/stat.cache | tr -d ' '; }
	n=$(entries)
	[ "$n" -ge 3 ] || fail "stat cache holds $n entries"
	rm "$(model)/sub/extra.txt"
	run_ok gc --dry-run --json
	[ "$(jq .stat_entries <<<"$output")" = 1 ] || fail "dry run: one stale entry"
	[ "$(entries)" = "$n" ] || fail "--dry-run changed the stat cache"
	run_ok gc --json
	[ "$(jq .stat_entries <<<"$output")" = 1 ] || fail "one stale entry dropped"
	[ "$(entries)" = "$((n - 1))" ] || fail "stat cache holds $(entries), not $((n - 1))"
}
