#!/usr/bin/env bats
# Path safety on the local runtime: artifacts are read only inside their
# volume (or the project), never through a symlink a stage left there; the
# state directory is never reached, written or deleted through a symlink.

load helpers

# A directory outside the project with a canary file in it.
make_victim() {
	VICTIM="$BATS_TEST_TMPDIR/victim"
	mkdir -p "$VICTIM"
	echo '{"secret": "hunter2"}' > "$VICTIM/creds.json"
}

assert_victim_intact() {
	[ -f "$VICTIM/creds.json" ] || fail "the victim's canary was deleted"
	[ "$(cat "$VICTIM/creds.json")" = '{"secret": "hunter2"}' ] || fail "the canary changed"
	[ "$(ls -A "$VICTIM")" = "creds.json" ] || fail "something was written into the victim: $(ls -A "$VICTIM")"
}

@test "a metrics path through a symlink a stage left in the volume is refused, the host file never read" {
	make_victim
	spec <<EOF
volumes:
  w: {}
stages:
  evil:
    command: sh -c 'ln -sfn $VICTIM /w/m'
    volumes: [w:/w]
    metrics: [w:/m/creds.json]
EOF
	run cpipe run
	[ "$status" -ne 0 ] || fail "run succeeded"
	assert_contains 'stage "evil": metrics w:/m/creds.json'
	assert_contains "(-> $VICTIM) leads outside"
	[ ! -e cpipe.lock ] || ! grep -q hunter2 cpipe.lock || fail "the host file got into the lock"
	! grep -rq hunter2 .cpipe/runs || fail "the host file got into a run record"
	assert_victim_intact
}

@test "an output or input through an escaping symlink is refused; a relative link inside the volume is followed" {
	make_victim
	spec <<EOF
volumes:
  w: {}
stages:
  good:
    command: sh -c 'mkdir -p /w/real && echo hi > /w/real/f && ln -sfn real /w/m'
    volumes: [w:/w]
    outputs: [w:/m/f]
  evil:
    command: sh -c 'ln -sfn $VICTIM /w/e'
    volumes: [w:/w]
    outputs: [w:/e/creds.json]
  reader:
    command: 'true'
    volumes: [w:/w]
    inputs: [w:/e/creds.json]
EOF
	run cpipe run good
	[ "$status" -eq 0 ] || fail "a link inside the volume was refused"
	want="sha256:$(echo hi | sha256sum | cut -d' ' -f1)"
	jq -e --arg w "$want" '.stages.good.outputs["w:/m/f"].digest == $w' cpipe.lock > /dev/null ||
		fail "w:/m/f is not the file behind the relative link: $(cat cpipe.lock)"
	run cpipe run evil
	[ "$status" -ne 0 ] || fail "evil succeeded"
	assert_contains 'stage "evil": output w:/e/creds.json'
	assert_contains "leads outside"
	run cpipe run --no-deps reader
	[ "$status" -ne 0 ] || fail "an input through the escaping link was read"
	assert_contains "leads outside"
	hostsum=$(sha256sum < "$VICTIM/creds.json" | cut -d' ' -f1)
	! grep -q "$hostsum" cpipe.lock || fail "the host file's digest got into the lock"
	run cpipe status
	! grep -q "$hostsum" <<< "$output" || fail "status showed the host file's digest"
	assert_victim_intact
}

@test "a project output through a symlink out of the project is refused" {
	make_victim
	mkdir -p out
	spec <<EOF
stages:
  evil:
    command: sh -c 'ln -sfn $VICTIM /out/m'
    volumes: [./out:/out]
    metrics: [./out/m/creds.json]
EOF
	run cpipe run
	[ "$status" -ne 0 ] || fail "run succeeded"
	assert_contains "leads outside $PROJ"
	[ ! -e cpipe.lock ] || ! grep -q hunter2 cpipe.lock || fail "the host file got into the lock"
	assert_victim_intact
}

one_volume_spec() {
	spec <<'EOF'
volumes:
  w: {}
stages:
  s:
    command: sh -c 'echo x > /w/x'
    volumes: [w:/w]
    outputs: [w:/x]
EOF
}

# $1: the path inside the project that is a link to the victim.
assert_link_refused_everywhere() {
	local link=$1 cmd
	for cmd in "run" "down -v" "volume rm w" "volume prune --all" "volume ls" "status"; do
		# shellcheck disable=SC2086
		run cpipe $cmd
		[ "$status" -eq 2 ] || fail "cpipe $cmd with $link a symlink: exit $status, not 2"
		assert_contains "$PROJ/$link is a symlink (-> $VICTIM)"
		assert_contains "remove the link"
		assert_victim_intact
	done
}

@test "a .cpipe that is a symlink is refused by run, down -v and volume rm/prune; the target is untouched" {
	make_victim
	one_volume_spec
	ln -s "$VICTIM" .cpipe
	assert_link_refused_everywhere .cpipe
}

@test "a symlinked .cpipe/volumes, runs, logs, run, cache or lock is refused" {
	make_victim
	one_volume_spec
	local d
	for d in volumes runs logs run cache lock; do
		rm -rf .cpipe
		mkdir .cpipe
		ln -s "$VICTIM" ".cpipe/$d"
		assert_link_refused_everywhere ".cpipe/$d"
	done
}

@test "a volume directory that is a symlink is neither mounted, written nor deleted through" {
	make_victim
	one_volume_spec
	mkdir -p .cpipe/volumes
	ln -s "$VICTIM" .cpipe/volumes/w
	assert_link_refused_everywhere .cpipe/volumes/w
	# Removing the link as told makes cpipe work again.
	rm .cpipe/volumes/w
	run cpipe run
	[ "$status" -eq 0 ] || fail "run after removing the link failed"
	assert_victim_intact
}

@test "down -v and volume rm unlink a symlink inside a volume, never its target" {
	make_victim
	spec <<EOF
volumes:
  w: {}
  v: {}
stages:
  s:
    command: sh -c 'ln -sfn $VICTIM /w/link && mkdir -p /w/d && ln -sfn $VICTIM/creds.json /w/d/f && ln -sfn $VICTIM /v/link'
    volumes: [w:/w, v:/v]
EOF
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	[ -L "$(vol w)/link" ] || fail "the stage left no link"
	run cpipe volume rm v
	[ "$status" -eq 0 ] || fail "volume rm failed"
	assert_victim_intact
	run cpipe run --force
	[ "$status" -eq 0 ] || fail "second run failed"
	run cpipe down -v
	[ "$status" -eq 0 ] || fail "down -v failed"
	[ ! -e "$(vol w)" ] || fail "the volume is still there"
	assert_victim_intact
}

@test "a cpipe.lock that is a symlink is replaced by the written lock, its target unchanged" {
	make_victim
	one_volume_spec
	local target="$BATS_TEST_TMPDIR/elsewhere.lock"
	echo '{"version": 1, "stages": {}}' > "$target"
	ln -s "$target" cpipe.lock
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	[ ! -L cpipe.lock ] || fail "cpipe.lock is still a symlink"
	jq -e '.stages.s.outputs["w:/x"].digest' cpipe.lock > /dev/null || fail "no lock written"
	[ "$(cat "$target")" = '{"version": 1, "stages": {}}' ] || fail "the lock was written through the link"
	assert_victim_intact
}
