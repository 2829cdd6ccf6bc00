#!/usr/bin/env bats
# Remotes of the artifact store on the local runtime, against real servers
# on loopback: a directory, nginx with WebDAV (the Bazel HTTP cache
# protocol) and s3rver (S3). A teammate pushes; a fresh clone pulls.

load helpers
load remote_helpers

setup_file() {
	remote_servers_start
}

teardown_file() {
	remote_servers_stop
}

# train writes a model directory (a file of $SIZE_KB random KiB, a nested
# file, a symlink) and metrics; eval reads the model. Both append to a
# ledger outside the volume, so a test counts what really ran.
pipeline() {
	mkdir -p bin ledger
	cat > bin/train.sh <<'EOF'
echo train >> /ledger/runs
mkdir -p /vol/model/sub
echo "lr=$LR" > /vol/model/weights.txt
head -c "${SIZE_KB}k" /dev/urandom > /vol/model/blob
echo nested > /vol/model/sub/extra.txt
ln -sf weights.txt /vol/model/latest
printf '{"lr": %s}\n' "$LR" > /vol/metrics.json
EOF
	cat > bin/eval.sh <<'EOF'
echo eval >> /ledger/runs
cat /vol/model/weights.txt > /vol/score
EOF
	spec <<EOF
${XCPIPE:-}
volumes:
  vol: {}
stages:
  train:
    command: sh /app/train.sh
    volumes: [vol:/vol, ./bin:/app:ro, ./ledger:/ledger]
    params: {lr: 1}
    environment: {LR: "\${params.lr}", SIZE_KB: "${SIZE_KB:-64}"}
    outputs: [vol:/model]
    metrics: [vol:/metrics.json]
  eval:
    command: sh /app/eval.sh
    volumes: [vol:/vol, ./bin:/app:ro, ./ledger:/ledger]
    inputs: [vol:/model]
    outputs: [vol:/score]
EOF
}

runs_count() {
	if [ -f ledger/runs ]; then wc -l < ledger/runs | tr -d ' '; else echo 0; fi
}

# The teammate's side: run, push to $1; then a fresh clone's
# CPIPE_REMOTE=$1 cpipe run --pull restores everything and runs nothing.
ci_recipe() {
	pipeline
	run_ok run
	cp -a "$(vol vol)/model" "$BATS_TEST_TMPDIR/model-made"
	CPIPE_REMOTE=$1 run_ok push
	assert_contains "pushed 2 stages"
	CPIPE_REMOTE=$1 run_ok push
	assert_contains "0 objects (0 bytes)"
	fresh_clone
	CPIPE_REMOTE=$1 run_ok run --pull
	assert_contains "train pulled from"
	assert_contains "train restored from run"
	assert_contains "eval restored from run"
	[ "$(runs_count)" = 0 ] || fail "a stage ran on the fresh clone: $(cat ledger/runs)"
	diff -r "$BATS_TEST_TMPDIR/model-made" "$(vol vol)/model" || fail "pulled model differs"
	[ "$(readlink "$(vol vol)/model/latest")" = weights.txt ] || fail "symlink not restored"
	[ "$(cat "$(vol vol)/score")" = "lr=1" ] || fail "eval's output not restored"
	run_ok status --check
	run_ok verify
	objects_sound
}

@test "directory remote: a fresh clone's run --pull restores what was pushed and runs nothing" {
	ci_recipe "$(remote_url dir)"
	[ -f "$(remote_file dir ac/"$(jq -r .stages.train.key cpipe.lock | cut -d: -f2)")" ] ||
		fail "no run cache entry under ac/ in the directory"
}

@test "nginx WebDAV remote: a fresh clone's run --pull restores what was pushed and runs nothing" {
	ci_recipe "$(remote_url http)"
	grep -q "PUT /t$BATS_TEST_NUMBER/cas/" "$SERVERS/nginx-access.log" || fail "nothing PUT to nginx"
	grep -q "HEAD /t$BATS_TEST_NUMBER/cas/" "$SERVERS/nginx-access.log" || fail "no HEAD before PUT"
}

@test "s3rver remote: a fresh clone's run --pull restores what was pushed and runs nothing" {
	s3_env
	ci_recipe "$(remote_url s3)"
	ls "$SERVERS/s3/cpipe-test/t$BATS_TEST_NUMBER/cas/" | grep -q _S3rver_object ||
		fail "no object in the bucket"
}

@test "pull checks out the locked outputs; pull STAGE only that stage's" {
	pipeline
	run_ok run
	url=$(remote_url http)
	run_ok push --remote "$url"
	fresh_clone
	run_ok pull train --remote "$url"
	assert_contains "pulled 1 stage"
	[ -f "$(vol vol)/model/weights.txt" ] || fail "train's model not checked out"
	[ ! -e "$(vol vol)/score" ] || fail "eval's output checked out though not named"
	run_ok pull --remote "$url"
	[ "$(cat "$(vol vol)/score")" = "lr=1" ] || fail "eval's output not checked out"
	run_ok status --check
	[ "$(runs_count)" = 0 ] || fail "pull ran something"
}

@test "x-cpipe: {remote: URL} in the spec names the remote" {
	XCPIPE="x-cpipe: {remote: $(remote_url dir)}" pipeline
	run_ok run
	run_ok push
	assert_contains "to $(remote_url dir)"
	fresh_clone
	run_ok run --pull
	assert_contains "train restored from run"
	run cpipe config
	XCPIPE="x-cpipe: {remot: x}" pipeline
	run cpipe push
	[ "$status" -eq 2 ] || fail "unknown x-cpipe key exit $status"
	assert_contains 'unknown key "remot" (did you mean "remote"?)'
	assert_contains "cpipe.yml:1:"
}

@test "a remote lacking the key: run --pull runs the stage" {
	pipeline
	run_ok run --pull --remote "$(remote_url http)"
	[ "$(runs_count)" = 2 ] || fail "expected both stages to run"
	refute_contains "pulled from"
}

# Flips one byte in the middle of train's 10 MiB blob on the remote of
# kind $1, keeping its name and size: what a bad disk or a malicious
# server would serve (and big enough to be hashed on the second thread).
tamper_blob() {
	local hex f
	hex=$(sha256sum "$(vol vol)/model/blob" | cut -d' ' -f1)
	echo "$hex"
	f=$(remote_file "$1" "cas/$hex")
	printf '%s' "$(($(od -An -tu1 -j 5000000 -N1 "$f") ^ 1))" |
		LC_ALL=C awk '{ printf "%c", $1 }' | dd of="$f" bs=1 seek=5000000 conv=notrunc status=none
	[ "$(stat -c %s "$f")" = 10485760 ] || { echo "tamper changed the size" >&2; return 1; }
	[ "$(sha256sum < "$f" | cut -d' ' -f1)" != "$hex" ] || { echo "tamper changed nothing" >&2; return 1; }
}

@test "a tampered object on a remote is refused and never installed (dir, nginx, s3)" {
	SIZE_KB=10240 pipeline
	run_ok run
	s3_env
	for kind in dir http s3; do
		run_ok push --remote "$(remote_url $kind)"
	done
	hex=$(tamper_blob dir)
	[ "$(tamper_blob http)" = "$hex" ] && [ "$(tamper_blob s3)" = "$hex" ] || fail "tampering failed"
	orig=$PROJ
	for kind in dir http s3; do
		PROJ=$orig
		fresh_clone "$kind"
		run cpipe run --pull --remote "$(remote_url $kind)"
		[ "$status" -eq 1 ] || fail "$kind: tampered pull exit $status"
		assert_contains "sha256:$hex arrived with sha256"
		assert_contains "corrupt; it was not installed"
		[ ! -e ".cpipe/store/objects/sha256/${hex:0:2}/${hex:2}" ] || fail "$kind: installed"
		objects_sound
		[ ! -e "$(vol vol)/model" ] || fail "$kind: a model was put in the volume"
		[ -z "$(ls .cpipe/store/tmp)" ] || fail "$kind: left in the store's tmp: $(ls .cpipe/store/tmp)"
		[ "$(runs_count)" = 0 ] || fail "$kind: a stage ran after the refusal"
		run cpipe pull --remote "$(remote_url $kind)"
		[ "$status" -eq 1 ] || fail "$kind: tampered pull (verb) exit $status"
		assert_contains "corrupt"
		objects_sound
	done
}

@test "a big download is checked out as its own verified copy (nginx, s3)" {
	SIZE_KB=12288 pipeline # past BG_HASH_MIN: written on both threads
	run_ok run
	s3_env
	made=$(vol vol)/model
	orig=$PROJ
	for kind in http s3; do
		PROJ=$orig
		(cd "$PROJ" && run_ok push --remote "$(remote_url $kind)")
		fresh_clone "$kind"
		run_ok pull --remote "$(remote_url $kind)"
		blob=$(vol vol)/model/blob
		cmp "$made/blob" "$blob" || fail "$kind: the pulled blob differs"
		[ "$(stat -c %a "$blob")" = "$(stat -c %a "$made/blob")" ] || fail "$kind: mode $(stat -c %a "$blob")"
		hex=$(sha256sum < "$blob" | cut -d' ' -f1)
		obj=.cpipe/store/objects/sha256/${hex:0:2}/${hex:2}
		[ "$(stat -c %h "$blob")" = 1 ] && [ "$(stat -c %i "$blob")" != "$(stat -c %i "$obj")" ] ||
			fail "$kind: the volume's blob shares the store's file"
		[ -z "$(ls .cpipe/store/tmp)" ] || fail "$kind: left in the store's tmp: $(ls .cpipe/store/tmp)"
		echo changed >> "$blob"
		objects_sound
		run_ok pull --remote "$(remote_url $kind)"
		cmp "$made/blob" "$blob" || fail "$kind: a second pull did not restore the blob"
	done
}

@test "kill -9 during a pull leaves no torn object; the next pull completes" {
	SIZE_KB=24576 pipeline
	run_ok run
	run_ok push --remote "$(remote_url http)"
	fresh_clone
	# /slow/ serves the same files at 4 MB/s: the 24 MiB blob takes ~6 s.
	slow="http://127.0.0.1:$NGINX_PORT/slow/t$BATS_TEST_NUMBER"
	"$CPIPE_BIN" pull --remote "$slow" > "$BATS_TEST_TMPDIR/pull.out" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		[ -n "$(find .cpipe/store/tmp -name 'pull-*' -size +1k 2>/dev/null)" ] && break
		sleep 0.05
	done
	[ -n "$(find .cpipe/store/tmp -name 'pull-*' -size +1k)" ] || fail "the download never started"
	[ -n "$(find .cpipe/store/tmp -name 'spare-*')" ] || fail "no second copy was being written"
	kill -9 "$pid"
	wait "$pid" || true
	objects_sound
	hex=$(sha256sum "$BATS_TEST_TMPDIR/proj/.cpipe/volumes/vol/model/blob" | cut -d' ' -f1)
	[ ! -e ".cpipe/store/objects/sha256/${hex:0:2}/${hex:2}" ] || fail "half a blob installed"
	[ ! -e "$(vol vol)/model" ] || fail "a model appeared in the volume"
	run_ok pull --remote "$(remote_url http)"
	objects_sound
	[ -z "$(ls .cpipe/store/tmp)" ] || fail "the killed pull's temporaries stayed: $(ls .cpipe/store/tmp)"
	run_ok status --check
}

@test "Basic auth and bearer tokens come from the environment and never reach a record, the lock or a log" {
	pipeline
	run_ok run
	base="http://127.0.0.1:$NGINX_PORT"
	run cpipe push --remote "$base/basic/t$BATS_TEST_NUMBER"
	[ "$status" -eq 1 ] || fail "push without credentials exit $status"
	assert_contains "HTTP 401 (check the remote's credentials)"
	CPIPE_REMOTE_USER=cpipe CPIPE_REMOTE_PASSWORD=s3cret-pw run_ok push --remote "$base/basic/t$BATS_TEST_NUMBER"
	run_ok push --remote "http://cpipe:s3cret-pw@127.0.0.1:$NGINX_PORT/basic/u$BATS_TEST_NUMBER"
	refute_contains "s3cret-pw"
	run cpipe push --remote "$base/bearer/t$BATS_TEST_NUMBER"
	[ "$status" -eq 1 ] || fail "push without the token exit $status"
	CPIPE_REMOTE_TOKEN=$REMOTE_TOKEN run_ok push --remote "$base/bearer/t$BATS_TEST_NUMBER"
	fresh_clone
	CPIPE_REMOTE_TOKEN=$REMOTE_TOKEN run_ok run --pull --remote "$base/bearer/t$BATS_TEST_NUMBER"
	assert_contains "train restored from run"
	run cpipe run --pull --remote "http://cpipe:s3cret-pw@127.0.0.1:$NGINX_PORT/basic/u$BATS_TEST_NUMBER" --force
	refute_contains "s3cret-pw"
	if grep -rl -e s3cret-pw -e "$REMOTE_TOKEN" .cpipe cpipe.lock "$BATS_TEST_TMPDIR/proj/.cpipe"; then
		fail "a credential was written down"
	fi
}

@test "S3: missing credentials are a usage error; an unknown access key fails naming them" {
	pipeline
	run_ok run
	run env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$CPIPE_BIN" push --remote s3://cpipe-test/x
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
	s3_env
	AWS_ACCESS_KEY_ID=AKIDUNKNOWN run cpipe push --remote "$(remote_url s3)"
	[ "$status" -eq 1 ] || fail "exit $status"
	assert_contains "HTTP 403 (check the remote's credentials)"
	refute_contains "S3RVER"
}

@test "a transfer retries while the server comes up" {
	pipeline
	run_ok run
	run_ok push --remote "$(remote_url dir)"
	fresh_clone
	port=$(free_port)
	# Python's http.server answers GET and HEAD from the directory remote;
	# it starts listening only after the pull has begun.
	(sleep 0.4 && cd "$(remote_url dir)" && exec python3 -m http.server -b 127.0.0.1 "$port") \
		> /dev/null 2>&1 &
	server=$!
	run cpipe pull --remote "http://127.0.0.1:$port/"
	kill "$server" 2>/dev/null; pkill -P "$server" 2>/dev/null || true
	[ "$status" -eq 0 ] || fail "pull did not outlast the server's start: exit $status"
	run_ok status --check
}

@test "bad remote usage is exit 2 before anything runs" {
	pipeline
	run cpipe push
	[ "$status" -eq 2 ] || fail "push without a remote exit $status"
	assert_contains "no remote: set CPIPE_REMOTE"
	run cpipe run --pull --remote ftp://example.com/x
	[ "$status" -eq 2 ] || fail "ftp remote exit $status"
	assert_contains "not a directory, file://, http(s):// or s3:// URL"
	run cpipe run --remote /tmp/x
	[ "$status" -eq 2 ] || fail "--remote without --pull exit $status"
	[ "$(runs_count)" = 0 ] || fail "something ran"
	run cpipe push nosuch --remote /tmp/x
	[ "$status" -eq 2 ] || fail "push of an unknown stage exit $status"
	assert_contains 'no stage "nosuch"'
}

@test "push of a stage whose outputs the store lost names it" {
	pipeline
	run_ok run
	rm -rf .cpipe/store
	run cpipe push --remote "$(remote_url dir)"
	[ "$status" -eq 1 ] || fail "exit $status"
	assert_contains 'stage "eval": the store has no outputs for its locked key sha256:'
	assert_contains "(run it here first: cpipe run eval)"
}

@test "a remote entry that is not what its key says is refused" {
	pipeline
	run_ok run
	run_ok push --remote "$(remote_url dir)"
	key=$(jq -r .stages.train.key cpipe.lock | cut -d: -f2)
	f=$(remote_file dir "ac/$key")
	jq '.outputs["vol:/model"].digest = "sha256:nothex"' "$f" > "$f.new" && mv "$f.new" "$f"
	fresh_clone
	run cpipe run --pull --remote "$(remote_url dir)"
	[ "$status" -eq 1 ] || fail "exit $status"
	assert_contains "the entry for key sha256:$key is corrupt; refused"
	[ "$(runs_count)" = 0 ] || fail "a stage ran after the refusal"
	[ -z "$(ls .cpipe/store/runs/sha256/)" ] || fail "the entry was saved"
}
