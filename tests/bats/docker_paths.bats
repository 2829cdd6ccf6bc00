#!/usr/bin/env bats
# Path safety on the Docker runtime: a volume is read through its host
# mountpoint, and a symlink a container left in it must not lead cpipe
# (root, on the host) out of the mountpoint onto the host.

load helpers
load docker_helpers

make_victim() {
	VICTIM="$BATS_TEST_TMPDIR/victim"
	mkdir -p "$VICTIM"
	echo '{"secret": "hunter2"}' > "$VICTIM/creds.json"
}

@test "docker: a metrics or output path through a symlink the container left is refused, the host file never read" {
	make_victim
	spec <<EOF
name: $P
volumes:
  w: {}
x-s: &s
  image: cpipe-test/busybox
  volumes: [w:/w]
stages:
  evil:
    <<: *s
    command: sh -c 'ln -sfn $VICTIM /w/m'
    metrics: [w:/m/creds.json]
  evil2:
    <<: *s
    command: sh -c 'ln -sfn $VICTIM /w/e'
    outputs: [w:/e/creds.json]
  good:
    <<: *s
    command: sh -c 'mkdir -p /w/real && echo hi > /w/real/f && ln -sfn real /w/r'
    outputs: [w:/r/f]
EOF
	run dcpipe run evil
	[ "$status" -ne 0 ] || fail "run succeeded"
	assert_contains 'stage "evil": metrics w:/m/creds.json'
	assert_contains "(-> $VICTIM) leads outside"
	[ ! -e cpipe.lock ] || ! grep -q hunter2 cpipe.lock || fail "the host file got into the lock"
	run dcpipe run evil2
	[ "$status" -ne 0 ] || fail "evil2 succeeded"
	assert_contains "leads outside"
	run dcpipe run good
	[ "$status" -eq 0 ] || fail "a relative link inside the volume was refused"
	want="sha256:$(echo hi | sha256sum | cut -d' ' -f1)"
	jq -e --arg w "$want" '.stages.good.outputs["w:/r/f"].digest == $w' cpipe.lock > /dev/null ||
		fail "w:/r/f is not the file behind the relative link"
	[ "$(cat "$VICTIM/creds.json")" = '{"secret": "hunter2"}' ] || fail "the canary changed"
}
