#!/usr/bin/env bats
# The local runtime's container-like filesystem: as root, outside its
# volumes, binds and the project's directory a stage writes to a throwaway
# layer over the host, which never sees those writes.

load helpers

setup() {
	PROJ="$BATS_TEST_TMPDIR/proj"
	mkdir -p "$PROJ"
	cd "$PROJ" || return 1
	TOK="cpipe-ovl-$$-$BATS_TEST_NUMBER"
	OUTSIDE="$BATS_TEST_TMPDIR/outside-$TOK"
}

teardown() {
	# Only if a test failed by writing to the host: leave it as it was.
	rm -rf "/opt/$TOK" "/usr/local/$TOK" "/etc/$TOK" "$OUTSIDE"
}

needs_root() {
	[ "$(id -u)" -eq 0 ] || skip "the throwaway layer needs cpipe to run as root"
}

@test "writes to /opt, /usr/local, beside the project and /etc are read back and never reach the host" {
	needs_root
	for p in "/opt/$TOK" "/usr/local/$TOK" "/etc/$TOK" "$OUTSIDE"; do
		[ ! -e "$p" ] || fail "$p exists before the run"
	done
	spec <<EOF
stages:
  a:
    command: >-
      sh -c 'mkdir -p /opt/$TOK/data && echo opt > /opt/$TOK/data/x &&
      echo usr > /usr/local/$TOK && echo beside > ../outside-$TOK &&
      echo etc > /etc/$TOK && echo kept > result.txt &&
      cat /opt/$TOK/data/x /usr/local/$TOK ../outside-$TOK /etc/$TOK'
    outputs: [./result.txt]
EOF
	run_ok run
	assert_contains "a | opt"
	assert_contains "a | usr"
	assert_contains "a | beside"
	assert_contains "a | etc"
	refute_contains "no throwaway layer"
	refute_contains "refuses the host's root"
	for p in "/opt/$TOK" "/usr/local/$TOK" "/etc/$TOK" "$OUTSIDE"; do
		[ ! -e "$p" ] || fail "the stage's write to $p reached the host"
	done
	# The project's directory is the host's: outputs land there.
	[ "$(cat "$PROJ/result.txt")" = kept ] || fail "the project's output did not reach the host"
}

@test "a second stage does not see the first one's throwaway writes" {
	needs_root
	spec <<EOF
stages:
  a:
    command: sh -c 'echo x > /etc/$TOK && echo y > ../outside-$TOK && cat /etc/$TOK'
  b:
    command: sh -c 'test -e /etc/$TOK || test -e ../outside-$TOK || echo unseen'
    depends_on: [a]
EOF
	run_ok run
	assert_contains "a | x"
	assert_contains "b | unseen"
	[ ! -e "/etc/$TOK" ] || fail "/etc/$TOK reached the host"
}

@test "a volume, a bind inside and a bind outside the project still get their writes" {
	needs_root
	mkdir -p data "$OUTSIDE"
	spec <<EOF
volumes:
  v: {}
stages:
  a:
    command: sh -c 'echo vol > /v/f && echo in > /data/f && echo out > /mnt/$TOK/f'
    volumes: [v:/v, ./data:/data, "$OUTSIDE:/mnt/$TOK"]
  b:
    command: sh -c 'cat /v/f /data/f /mnt/$TOK/f'
    volumes: [v:/v, ./data:/data, "$OUTSIDE:/mnt/$TOK"]
    depends_on: [a]
EOF
	run_ok run
	assert_contains "b | vol"
	assert_contains "b | in"
	assert_contains "b | out"
	[ "$(cat "$(vol v)/f")" = vol ] || fail "the volume's write is lost"
	[ "$(cat data/f)" = in ] || fail "the bind's write is lost"
	[ "$(cat "$OUTSIDE/f")" = out ] || fail "the outside bind's write is lost"
}

@test "a host socket outside the project is reached through a bind, as with docker" {
	needs_root
	command -v python3 > /dev/null || skip "python3 missing"
	mkdir -p "$OUTSIDE"
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(4)
while True:
    c, _ = s.accept()
    c.sendall(b"pong")
    c.close()' "$OUTSIDE/sock" &
	server=$!
	wait_for_file "$OUTSIDE/sock" || fail "the socket server did not start"
	cat > client.py <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print(s.recv(4).decode())
except ConnectionRefusedError:
    print("refused")
EOF
	spec <<EOF
stages:
  bound:
    command: python3 client.py /run/$TOK.sock
    volumes: ["$OUTSIDE/sock:/run/$TOK.sock"]
  layered:
    command: python3 client.py $OUTSIDE/sock
EOF
	run cpipe run
	kill "$server"
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "bound   | pong"
	# Through the layer a socket is a file, not the server's: overlayfs
	# passes no connect() through.
	assert_contains "layered | refused"
}

@test "read_only: true refuses writes, with no writable layer at all" {
	needs_root
	spec <<EOF
stages:
  a:
    command: >-
      sh -c 'touch /etc/$TOK 2>&1; mkdir /opt/$TOK 2>&1;
      grep -E "^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / " /proc/self/mountinfo | sed "s/^/root=/"'
    read_only: true
EOF
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "/etc/$TOK': Read-only file system"
	assert_contains "/opt/$TOK': Read-only file system"
	root=$(grep "a | root=" <<< "$output")
	[[ "$root" == *" - tmpfs "* ]] || fail "the root is not the tmpfs binding the host's directories: $root"
	[ ! -e "/etc/$TOK" ] && [ ! -e "/opt/$TOK" ] || fail "a write reached the host"
}

@test "after kill -9 of cpipe mid-stage no layer, mount or directory is left, and the next run works" {
	needs_root
	spec <<EOF
stages:
  a:
    command: sh -c 'mkdir -p /opt/$TOK && echo x > /opt/$TOK/x && touch started && exec sleep 300'
  b:
    command: sh -c 'test -e /opt/$TOK || echo clean'
EOF
	"$CPIPE_BIN" run a > "$BATS_TEST_TMPDIR/run.log" 2>&1 &
	cpid=$!
	wait_for_file started 20 || fail "the stage did not start: $(cat "$BATS_TEST_TMPDIR/run.log")"
	init=$(pgrep -P "$cpid" -x cpipe-init)
	[ -n "$init" ] || fail "no sandbox init under cpipe $cpid"
	# While it runs the stage's root is an overlay, its layer a tmpfs
	# seen by its own mount namespace only.
	awk '$5 == "/" && / - overlay /' "/proc/$init/mountinfo" | grep -q . || fail "the stage's root is no overlay"
	! grep -q "$PROJ/.cpipe/run" /proc/self/mountinfo || fail "the layer is mounted on the host"
	kill -9 "$cpid"
	wait "$cpid" 2> /dev/null || true
	for ((i = 0; i < 200; i++)); do
		[ -d "/proc/$init" ] || break
		sleep 0.05
	done
	[ ! -d "/proc/$init" ] || fail "the sandbox outlived cpipe's kill -9"
	[ ! -e "/opt/$TOK" ] || fail "the stage's write reached the host"
	! grep -q "$PROJ" /proc/self/mountinfo || fail "a mount of the project is left"
	[ -z "$(ls -A .cpipe/run 2> /dev/null | grep '^root\.')" ] || fail "a sandbox root is left: $(ls -A .cpipe/run)"

	# What a kill -9 while a sandbox was being set up leaves: the empty
	# directory its layers were mounted on. The next run removes it, but
	# not one a sandbox may be being set up on right now.
	mkdir -p .cpipe/run/root.stale .cpipe/run/root.fresh
	touch -d '2 minutes ago' .cpipe/run/root.stale
	run_ok run b
	assert_contains "b | clean"
	[ ! -e .cpipe/run/root.stale ] || fail "the next run left a stale sandbox root"
	[ -d .cpipe/run/root.fresh ] || fail "the next run removed a root that may be in use"
	rmdir .cpipe/run/root.fresh
	! grep -q "$PROJ" /proc/self/mountinfo || fail "a mount of the project is left"
	[ -z "$(ls -A .cpipe/run 2> /dev/null | grep '^root\.')" ] || fail "a sandbox root is left: $(ls -A .cpipe/run)"
}

@test "a filesystem overlayfs refuses as a lower layer is bound as before, and said once" {
	needs_root
	command -v unshare > /dev/null || skip "unshare (util-linux) missing"
	# An overlay on an overlay is as deep as overlayfs stacks: a third
	# level, the stage's layer over it, is refused by the kernel.
	mkdir -p "$BATS_TEST_TMPDIR"/{l,u1,w1,u2,w2,mid} "$OUTSIDE"
	spec <<EOF
stages:
  a:
    command: sh -c 'echo a > $OUTSIDE/a && echo t > /etc/$TOK'
  b:
    command: sh -c 'cat $OUTSIDE/a && echo b > $OUTSIDE/b'
    depends_on: [a]
EOF
	t=$BATS_TEST_TMPDIR
	run unshare -m --propagation private sh -c "
		mount -t overlay overlay -o lowerdir=$t/l,upperdir=$t/u1,workdir=$t/w1 $t/mid &&
		mount -t overlay overlay -o lowerdir=$t/mid,upperdir=$t/u2,workdir=$t/w2 $OUTSIDE &&
		'$CPIPE_BIN' run && cat $OUTSIDE/b"
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "cpipe: warning: overlayfs refuses the mounted filesystem $OUTSIDE ("
	assert_contains "a stage's writes there reach the host as before"
	[ "$(grep -c 'overlayfs refuses' <<< "$output")" -eq 1 ] || fail "the fallback was not said once"
	# Today's behaviour there: the host's directory, shared by the stages.
	assert_contains "b | a"
	# Elsewhere the layer still holds.
	[ ! -e "/etc/$TOK" ] || fail "/etc/$TOK reached the host"
	[ "$(cat "$t/u2/b")" = b ] || fail "b's write is not in the mounted filesystem"
}

@test "without root the stages run without a layer, as before, and cpipe says so once" {
	needs_root
	command -v setpriv > /dev/null || skip "setpriv (util-linux) missing"
	top=$(mktemp -d /tmp/cpipe-ovl-nobody.XXXXXX)
	chmod 755 "$top"
	PROJ=$top/proj
	mkdir "$PROJ" "$top/beside"
	cd "$PROJ" || fail "cd"
	spec <<'EOF'
stages:
  a:
    command: sh -c 'echo a > ../beside/a'
  b:
    command: sh -c 'cat ../beside/a'
    depends_on: [a]
EOF
	chown -R 65534:65534 "$top"
	run setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$PROJ" "$CPIPE_BIN" run
	beside=$(cat "$top/beside/a" 2> /dev/null || true)
	cd / && rm -rf "$top"
	[ "$status" -eq 0 ] || fail "unprivileged run failed"
	assert_contains "cpipe: warning: the local runtime gives stages no throwaway layer over the host without root"
	[ "$(grep -c 'no throwaway layer' <<< "$output")" -eq 1 ] || fail "the fallback was not said once"
	assert_contains "b | a"
	[ "$beside" = a ] || fail "the fallback did not write the host as before"
}
