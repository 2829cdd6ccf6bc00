#!/usr/bin/env bats
# Compose's verbs on the local runtime: run STAGE -- CMD (a one-off that is
# recorded and leaves cpipe.lock alone), exec into a running service (its
# namespaces, environment and working_dir, its exit code), stop / start /
# restart / kill / rm, port, top, images, ls; options after operands.

load helpers

teardown() {
	[ -d "$PROJ" ] && cd "$PROJ" && "$CPIPE_BIN" down > /dev/null 2>&1 || true
}

# A job writing a volume, and a service that publishes a port and answers
# with its pid namespace's idea of itself.
verbs_spec() {
	port=$(free_port)
	spec <<EOF2
name: verbs
volumes:
  data: {}
stages:
  make:
    command: sh -c 'echo made > /data/made'
    volumes: [data:/data]
    outputs: [data:/made]
  web:
    service: true
    command: sh -c 'echo \$\$\$\$ > /data/web.pid; exec sleep 1000'
    environment: {GREETING: hello-from-web}
    working_dir: /data
    volumes: [data:/data]
    ports: ["127.0.0.1:$port:8080"]
EOF2
}

@test "run STAGE -- CMD runs CMD in the stage's environment and mounts, recorded, lock untouched" {
	verbs_spec
	run_ok run make
	cp cpipe.lock lock.before
	run_ok run make -- sh -c 'cat /data/made; echo one-off > /data/extra; exit 0'
	assert_contains "made"
	cmp -s cpipe.lock lock.before || fail "the one-off changed cpipe.lock"
	[ "$(cat "$(vol data)/extra")" = one-off ] || fail "the one-off did not write the stage's volume"
	run_ok runs --json
	[ "$(jq length <<< "$output")" -eq 2 ] || fail "the one-off is not recorded as a run"
	# Run again: a one-off is never skipped as fresh.
	run_ok run --rm -d make -- sh -c 'echo again'
	assert_contains "again"
	# Its exit status says the command failed.
	run cpipe run make -- sh -c 'exit 3'
	[ "$status" -eq 1 ] || fail "a failing one-off exited $status"
	run cpipe run make --
	[ "$status" -eq 2 ] || fail "run STAGE -- with no command exited $status"
	run cpipe run nosuch -- true
	[ "$status" -eq 2 ] || fail "an unknown stage exited $status"
}

@test "exec runs a command inside the running service: its pid namespace, env, working_dir, exit code" {
	verbs_spec
	run_ok up
	run cpipe exec web sh -c 'echo "$GREETING in $(pwd) as pid $$"; ls /proc | grep -c "^[0-9]" > /dev/null; exit 7'
	[ "$status" -eq 7 ] || fail "exec did not forward the exit code (got $status)"
	assert_contains "hello-from-web in /data as pid"
	# Its pid namespace is the service's: the service's own pid is small.
	run cpipe exec web cat /data/web.pid
	[ "$status" -eq 0 ] || fail "exec cat failed"
	[ "$output" -lt 10 ] || fail "the service's pid $output is not from its own namespace"
	run cpipe exec web sh -c 'kill -0 '"$output"' && echo sees-the-service'
	assert_contains "sees-the-service"
	# Options of the command are the command's; exec's own come before STAGE.
	run cpipe exec -T web ls -la /data
	[ "$status" -eq 0 ] || fail "exec ls -la exited $status"
	assert_contains "web.pid"
	# stdin is the command's.
	run bash -c 'echo through-stdin | "$CPIPE_BIN" exec web cat'
	assert_contains "through-stdin"
	run cpipe exec web no-such-command
	[ "$status" -eq 127 ] || fail "an unknown command exited $status"
	run cpipe exec make true
	[ "$status" -eq 1 ] || fail "exec into a stage that is not up exited $status"
	assert_contains "service make is not up"
	run cpipe exec web
	[ "$status" -eq 2 ] || fail "exec without a command exited $status"
}

@test "stop keeps the service for start; restart gives a new process; kill and rm" {
	verbs_spec
	run_ok up
	first=$(cat "$(vol data)/web.pid")
	run_ok stop
	assert_contains "stopped web"
	run_ok ps --json
	[ "$(jq -r '.[0].state' <<< "$output")" = exited ] || fail "a stopped service is not listed as exited"
	port_closed "$port" || fail "the port is still served after stop"
	run_ok start
	run_ok ps --json
	[ "$(jq -r '.[0].state' <<< "$output")" = running ] || fail "start did not bring web back"
	run_ok exec web true
	rm "$(vol data)/web.pid"
	run_ok restart web
	wait_for_file "$(vol data)/web.pid" || fail "restart did not start web again"
	run_ok ps --json
	[ "$(jq -r '.[0].state' <<< "$output")" = running ] || fail "web is not running after restart"
	run cpipe kill -s NOSUCH web
	[ "$status" -eq 2 ] || fail "a bad signal exited $status"
	run_ok kill -s TERM web
	assert_contains "killed web"
	for _ in $(seq 50); do
		[ "$(cpipe ps --json | jq -r '.[0].state')" = exited ] && break
		sleep 0.1
	done
	[ "$(cpipe ps --json | jq -r '.[0].state')" = exited ] || fail "web still runs after kill"
	run_ok rm
	assert_contains "removed web"
	run_ok ps --json
	[ "$(jq length <<< "$output")" -eq 0 ] || fail "rm left the service listed"
	# rm leaves a running service alone unless -s.
	run_ok up
	run_ok rm
	refute_contains "removed"
	run_ok rm -s web
	assert_contains "stopped web"
	assert_contains "removed web"
}

@test "port prints the published host address; top lists the service's processes" {
	verbs_spec
	run_ok up
	run_ok port web 8080
	[ "$output" = "127.0.0.1:$port" ] || fail "port printed $output"
	# Options after the operands; -p naming the spec's own name is the same project.
	run_ok port web 8080/tcp --project-name verbs -q
	[ "$output" = "127.0.0.1:$port" ] || fail "port with options after it printed $output"
	run cpipe port web 9
	[ "$status" -eq 1 ] || fail "an unpublished port exited $status"
	run cpipe port web notaport
	[ "$status" -eq 2 ] || fail "a bad port exited $status"
	run_ok top
	assert_contains "sleep 1000"
	run_ok top --json
	jq -e '.web.Processes | map(.[3]) | any(test("sleep 1000"))' <<< "$output" > /dev/null ||
		fail "top --json lacks the service's process"
}

@test "images lists the stages' images; ls lists the projects under the directory" {
	verbs_spec
	cat >> cpipe.yml <<'EOF2'
  tool:
    image: busybox:1.36
    command: "true"
    profiles: [never]
EOF2
	run_ok images
	assert_contains "busybox:1.36"
	mkdir -p sub/two
	printf 'name: second\nstages:\n  s:\n    command: "echo ${UNSET_IN_SECOND}"\n' > sub/two/cpipe.yml
	(cd sub/two && "$CPIPE_BIN" run -q > /dev/null 2>&1) || fail "the second project did not run"
	run_ok up
	run_ok -p third run make
	run_ok ls
	refute_contains "UNSET_IN_SECOND"
	assert_line() { grep -qE -- "$1" <<< "$output" || fail "expected a line matching: $1"; }
	assert_line "^verbs +running\(1\)"
	assert_line "^second +no services up +$PROJ/sub/two/cpipe.yml"
	assert_line "^third "
}
