#!/usr/bin/env bats
# Artifacts and provenance on the local runtime: digests, records, skipping,
# status reasons, the lock, secrets, crash safety, verify.

load helpers

# prepare -> train -> evaluate, deterministic, with params and metrics.
pipeline() {
	mkdir -p data
	printf '1\n2\n3\n4\n' > data/raw.txt
	spec <<'EOF'
volumes:
  work: {}
stages:
  prepare:
    command: sh -c 'mkdir -p /w/data && sort -n /in/raw.txt > /w/data/clean.txt && echo prepared'
    volumes: [work:/w, ./data:/in:ro]
    inputs: [./data/raw.txt]
    outputs: [work:/data/clean.txt]
  train:
    command: sh -c 'mkdir -p /w/model && awk -v lr=$$CPIPE_PARAM_LR "{s+=\$$1*lr} END {print s}" /w/data/clean.txt > /w/model/ckpt && echo trained'
    volumes: [work:/w]
    params: {lr: 0.5, epochs: 1}
    environment:
      API_TOKEN: ${API_TOKEN:-tok-abcdef-123456}
    inputs: [work:/data/clean.txt]
    outputs: [work:/model/ckpt]
  evaluate:
    command: [sh, -c, 'echo "{\"score\": $$(cat /w/model/ckpt)}" > /w/metrics.json && echo evaluated']
    volumes: [work:/w]
    inputs: [work:/model/ckpt]
    metrics: [work:/metrics.json]
EOF
}

last_record() {
	ls "$PROJ"/.cpipe/runs/*.json | sort | tail -1
}

@test "records hold stages, commands, params, digests equal to sha256sum, and git facts" {
	pipeline
	git init -q . && git add -A && git -c user.email=t@t -c user.name=t commit -qm init
	git remote add origin https://alice:s3cr3t@example.invalid/ml/repo.git
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	rec=$(last_record)
	jq -e '.schema == "cpipe-run/1" and .status == "succeeded" and .runtime == "local"' "$rec" >/dev/null || fail "header"
	jq -e '.git.commit == "'"$(git rev-parse HEAD)"'" and .git.branch != null and .git.dirty == false' "$rec" >/dev/null || fail "git facts: $(jq .git "$rec")"
	jq -e '.git.remote == "https://example.invalid/ml/repo.git"' "$rec" >/dev/null || fail "remote credentials not stripped"
	jq -e '[.stages[].name] == ["prepare","train","evaluate"]' "$rec" >/dev/null || fail "stages"
	jq -e '.stages[1].params.lr == "0.5" and .stages[1].status == "ran" and .stages[1].exit_code == 0' "$rec" >/dev/null || fail "train entry"
	jq -e '.stages[1].image.digest == "local" and (.stages[1].key | startswith("sha256:"))' "$rec" >/dev/null || fail "image/key"
	jq -e '.stages[2].metrics["work:/metrics.json"].values.score == 5' "$rec" >/dev/null || fail "metrics"
	want="sha256:$(sha256sum .cpipe/volumes/work/model/ckpt | cut -d' ' -f1)"
	[ "$(jq -r '.stages[1].outputs["work:/model/ckpt"].digest' "$rec")" = "$want" ] || fail "output digest != sha256sum"
	[ "$(jq -r '.stages[2].inputs["work:/model/ckpt"].digest' "$rec")" = "$want" ] || fail "input digest != sha256sum"
	want_raw="sha256:$(sha256sum data/raw.txt | cut -d' ' -f1)"
	[ "$(jq -r '.stages[0].inputs["./data/raw.txt"].digest' "$rec")" = "$want_raw" ] || fail "host input digest"
	log=$(jq -r '.stages[0].log' "$rec")
	[ "$(cat "$log")" = prepared ] || fail "log path"
}

@test "a secret in the environment never reaches .cpipe/ or the lock" {
	pipeline
	API_TOKEN=tok-super-secret-98765 run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	! grep -r "tok-super-secret-98765" .cpipe cpipe.lock || fail "secret written down"
	jq -e '.stages[1].environment.API_TOKEN == "<redacted>"' "$(last_record)" >/dev/null || fail "not redacted"
}

@test "a second run skips every stage and says so" {
	pipeline
	cpipe run >/dev/null 2>&1
	run cpipe run
	[ "$status" -eq 0 ] || fail "second run failed"
	assert_contains "prepare is up to date, skipped"
	assert_contains "train is up to date, skipped"
	assert_contains "evaluate is up to date, skipped"
	refute_contains "trained"
	jq -e '[.stages[].status] == ["skipped","skipped","skipped"] and (.stages[0].reused_from | length > 0)' "$(last_record)" >/dev/null || fail "record of skips"
}

@test "--set reruns exactly the affected stages and the record shows the override" {
	pipeline
	cpipe run >/dev/null 2>&1
	run cpipe run --set train.lr=2
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "prepare is up to date, skipped"
	assert_contains "train    | trained"
	assert_contains "evaluate | evaluated"
	jq -e '.overrides["train.lr"] == "2" and .stages[1].param_overrides.lr == "2" and .stages[1].params.lr == "2"' "$(last_record)" >/dev/null || fail "override not recorded"
	# An experiment: the lock keeps the spec's lr, the volume the experiment's model.
	run cpipe status train
	[ "$status" -eq 0 ] || fail "cpipe status train exited $status"
	assert_contains "output work:/model/ckpt changed"
	run cpipe status --set train.lr=2 train
	[ "$status" -eq 0 ] || fail "cpipe status --set train.lr=2 train exited $status"
	assert_contains "params.lr 0.5 → 2"
}

@test "--force reruns what is up to date" {
	pipeline
	cpipe run >/dev/null 2>&1
	run cpipe run --force prepare
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "prepare | prepared"
}

@test "an upstream rerun with identical output leaves downstream fresh" {
	pipeline
	cpipe run >/dev/null 2>&1
	# Same numbers, other order: prepare reruns, its sorted output is identical.
	printf '4\n3\n2\n1\n' > data/raw.txt
	run cpipe status
	[ "$status" -eq 0 ] || fail "cpipe status exited $status"
	assert_contains "input ./data/raw.txt changed"
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "prepare  | prepared"
	assert_contains "train is up to date, skipped"
	assert_contains "evaluate is up to date, skipped"
}

@test "editing an input makes exactly the dependent stages stale, and status says why" {
	pipeline
	cpipe run >/dev/null 2>&1
	run cpipe status --check
	[ "$status" -eq 0 ] || fail "fresh pipeline reported stale: $output"
	echo 6 > "$(vol work)/model/ckpt"
	run cpipe status
	[ "$status" -eq 0 ] || fail "cpipe status exited $status"
	[[ "$output" == *"prepare   fresh"* ]] || fail "prepare should be fresh"
	# The store still holds the locked checkpoint: stale, but restorable.
	assert_contains "train     restorable output work:/model/ckpt changed (sha256:"
	assert_contains "evaluate  stale   input work:/model/ckpt changed (sha256:"
	run cpipe status --check
	[ "$status" -eq 1 ] || fail "--check should exit 1"
	run cpipe status --json
	[ "$status" -eq 0 ] || fail "cpipe status --json exited $status"
	echo "$output" | jq -e '.stale == 2 and .stages[0].state == "fresh" and (.stages[2].reasons | length) >= 1' >/dev/null || fail "status json"
	rm "$(vol work)/metrics.json"
	run cpipe status evaluate
	[ "$status" -eq 0 ] || fail "cpipe status evaluate exited $status"
	assert_contains "output work:/metrics.json missing"
	run cpipe status
	[ "$status" -eq 0 ] || fail "cpipe status exited $status"
	[[ "$output" != *"never ran"* ]] || fail "locked stages reported as never ran"
	rm cpipe.lock
	run cpipe status prepare
	[ "$status" -eq 0 ] || fail "cpipe status prepare exited $status"
	assert_contains "never ran"
}

@test "the lock is byte-identical across clean runs and lists keys, inputs and outputs" {
	pipeline
	cpipe run >/dev/null 2>&1
	cp cpipe.lock "$BATS_TEST_TMPDIR/first.lock"
	rm -rf .cpipe cpipe.lock
	cpipe run >/dev/null 2>&1
	cmp cpipe.lock "$BATS_TEST_TMPDIR/first.lock" || fail "locks differ: $(diff cpipe.lock "$BATS_TEST_TMPDIR/first.lock")"
	jq -e '.stages.train.key and .stages.train.inputs["work:/data/clean.txt"].size == 8 and .stages.train.outputs["work:/model/ckpt"].digest' cpipe.lock >/dev/null || fail "lock content"
	jq -e '.stages | keys == ["evaluate","prepare","train"]' cpipe.lock >/dev/null || fail "stages missing from the lock"
}

# jq's `keys` sorts by itself; `keys_unsorted` is the order in the file.
assert_keys_sorted_in_file() {
	jq -e '[.. | objects | keys_unsorted == keys] | all' "$1" > /dev/null ||
		fail "$1: keys out of order at: $(jq -c '[.. | objects | select(keys_unsorted != keys) | keys_unsorted] | first' "$1")"
}

@test "the lock and the run records keep their keys sorted at every level" {
	pipeline
	cpipe run >/dev/null 2>&1
	assert_keys_sorted_in_file cpipe.lock
	assert_keys_sorted_in_file "$(last_record)"
	# Diff-friendly: two-space indentation, one key per line, a final newline.
	[ "$(sed -n 2p cpipe.lock)" = '  "stages": {' ] || fail "lock layout: $(head -3 cpipe.lock)"
	[ "$(tail -c 1 cpipe.lock | od -An -c | tr -d ' ')" = '\n' ] || fail "no final newline"
}

@test "a stage that does not write a declared output fails" {
	spec <<'EOF'
volumes:
  v: {}
stages:
  lazy:
    command: "true"
    volumes: [v:/v]
    outputs: [v:/never-written]
EOF
	run cpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1"
	assert_contains 'stage "lazy" exited 0 but did not write its declared output v:/never-written'
}

@test "verify rehashes outputs against the lock" {
	pipeline
	cpipe run >/dev/null 2>&1
	run cpipe verify
	[ "$status" -eq 0 ] || fail "verify failed on intact outputs"
	echo tampered > "$(vol work)/data/clean.txt"
	run cpipe verify
	[ "$status" -eq 1 ] || fail "verify missed a change"
	assert_contains "prepare: work:/data/clean.txt: expected sha256:"
}

# Every file cpipe keeps under its final name parses and is not empty:
# what a kill -9 in the middle of writing one would break.
assert_state_whole() {
	local f
	for f in cpipe.lock $(find .cpipe -name volumes -prune -o -name logs -prune -o -type f -name '*.json' -print); do
		[ -e "$f" ] || continue
		[ -s "$f" ] || fail "$f is empty $1"
		jq empty "$f" 2> /dev/null || fail "$f is torn $1: $(tail -c 80 "$f")"
	done
}

@test "kill -9 at any moment never leaves a torn record, cache or lock, and the next run finishes" {
	spec <<'EOF2'
volumes:
  v: {}
x-s: &s
  volumes: [v:/v]
stages:
  s1: {<<: *s, command: "sh -c ': cpipe-k9; seq 1 20000 > /v/s1'", outputs: [v:/s1]}
  s2: {<<: *s, command: "sh -c ': cpipe-k9; sort -r /v/s1 > /v/s2'", outputs: [v:/s2], inputs: [v:/s1]}
  s3: {<<: *s, command: "sh -c ': cpipe-k9; wc -l < /v/s2 > /v/s3'", outputs: [v:/s3], inputs: [v:/s2]}
  s4: {<<: *s, command: "sh -c ': cpipe-k9; cat /v/s3 /v/s3 > /v/s4'", outputs: [v:/s4], inputs: [v:/s3]}
  s5: {<<: *s, command: "sh -c ': cpipe-k9; sleep 0.5; seq 1 5 > /v/s5'", outputs: [v:/s5]}
EOF2
	# Kill points spread uniformly over a whole run, for about 20 s; s5
	# runs beside the others to be killed with them.
	t0=$(now_ms)
	cpipe -q run -j 2 > /dev/null 2>&1 || fail "the first run failed"
	span=$(($(now_ms) - t0 + 20))
	kills=0 deadline=$((SECONDS + 20))
	while [ "$SECONDS" -lt "$deadline" ] || [ "$kills" -lt 10 ]; do
		delay=$(((RANDOM * 32768 + RANDOM) % span))
		"$CPIPE_BIN" -q run -j 2 --force > /dev/null 2>&1 &
		pid=$!
		sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
		kill -9 "$pid" 2> /dev/null || true
		wait "$pid" 2> /dev/null || true
		kills=$((kills + 1))
		assert_state_whole "after kill -9 at ${delay} ms (kill $kills)"
		# The sandbox dies with cpipe: nothing keeps running.
		for i in 1 2 3; do [ -z "$(procs_matching cpipe-k9)" ] && break; sleep 0.05; done
		[ -z "$(procs_matching cpipe-k9)" ] || fail "a stage process survived kill -9 at ${delay} ms: $(procs_matching cpipe-k9)"
	done
	echo "# $kills kills within a run of $span ms; $(find . -name '*.tmp.*' | wc -l) temporaries left" >&3
	# And one a writer that died for sure left (kills may leave none).
	sh -c 'exit 0' &
	dead=$!
	wait "$dead"
	printf '{"stages": {"s1": ' > "cpipe.lock.tmp.$dead"
	printf '{"key": ' > ".cpipe/store/runs/sha256/$(printf '%064d' 0).json.tmp.$dead"
	mkdir -p .cpipe/services
	for f in .cpipe/project.json .cpipe/services/s5.json .cpipe/cache/executions.json; do
		printf '{"a' > "$f.tmp.$dead"
	done
	run cpipe run
	[ "$status" -eq 0 ] || fail "the run after the kills failed"
	[ "$(tr -d ' ' < "$(vol v)/s4")" = "$(printf '20000\n20000')" ] || fail "outputs wrong after recovery"
	assert_state_whole "after the recovery run"
	run cpipe status --check
	[ "$status" -eq 0 ] || fail "not fresh after recovery: $output"
	# The recovery run swept the temporaries the killed writers left.
	left=$(find . -path ./.cpipe/volumes -prune -o -name '*.tmp.*' -print)
	[ -z "$left" ] || fail "temporary files left behind: $left"
}

# Checks an strace -y log ($1) for the durable atomic writes of $2: each
# rename of $2.tmp.PID over $2 (only the last one with $3 = last) follows an
# fsync of that temporary and is followed by an fsync of $2's directory
# (only the last one with $4 = last: the directory may be settled once).
# Prints what is missing; fails when anything is.
durable_renames() {
	awk -v final="$2" -v dir="${2%/*}" -v which="${3:-all}" -v dirs="${4:-all}" '
		/ (fsync|fdatasync)\(/ {
			if (index($0, "<" final ".tmp."))
				synced = 1
			if (n && index($0, "<" dir ">)"))
				dirsynced[n] = 1
			next
		}
		/ rename(at2?)?\(/ && index($0, final ".tmp.") && index($0, "\"" final "\"") && / = 0$/ {
			n++
			datasynced[n] = synced
			synced = 0
		}
		END {
			if (!n) { print "no atomic rename of " final; exit 1 }
			bad = 0
			for (i = which == "last" ? n : 1; i <= n; i++) {
				if (!datasynced[i]) { print "rename " i " of " n ": " final " not fsynced before it"; bad = 1 }
				if (!dirsynced[i] && (dirs != "last" || i == n)) { print "rename " i " of " n ": " dir " not fsynced after it"; bad = 1 }
			}
			exit bad
		}' "$1"
}

# The lock is rewritten as each stage ends, between it and the next start:
# its new content reaches the disk before it replaces the old (a power loss
# leaves a whole lock, old or new), and its directory is fsynced once, after
# the last rename, before cpipe returns (bench/docker-stages).
@test "the lock and the final run record reach the disk before they replace the old ones" {
	command -v strace > /dev/null || skip "strace is not installed (make deps)"
	strace -o /dev/null true 2> /dev/null || skip "ptrace is not permitted here"
	pipeline
	PROJ=$(pwd -P)
	# LeakSanitizer (make asan) cannot run under ptrace; the rest of ASan can.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -y -s 4096 -e trace=fsync,fdatasync,rename,renameat,renameat2 -o trace.log \
		"$CPIPE_BIN" run > out.log 2>&1 || { output=$(cat out.log); fail "run under strace failed"; }
	output=$(durable_renames trace.log "$PROJ/cpipe.lock" all last) || fail "cpipe.lock is not written durably"
	# One fsync of the project directory, not one per stage.
	n=$(grep -c " fsync(.*<$PROJ>)" trace.log)
	[ "$n" -eq 1 ] || fail "the project directory was fsynced $n times, not once"
	rec=$(last_record)
	output=$(durable_renames trace.log "$PROJ/.cpipe/runs/${rec##*/}" last) || fail "the final run record is not written durably"
}

@test "run --json prints the run's record alone on stdout, stage logs on stderr" {
	pipeline
	"$CPIPE_BIN" run --json > out.json 2> err.log || fail "run failed"
	jq -e '.status == "succeeded" and ([.stages[].name] == ["prepare","train","evaluate"])' out.json > /dev/null || fail "stdout is not the record: $(head -c 300 out.json)"
	grep -q "train    | trained" err.log || fail "stage logs missing from stderr"
}
