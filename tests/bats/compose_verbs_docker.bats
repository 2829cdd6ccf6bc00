#!/usr/bin/env bats
# Compose's verbs and project naming on the docker runtime: -p and
# COMPOSE_PROJECT_NAME drive labels, volume and network names (<project>_
# <name>, or the volume's name:); exec uses the exec API; stop / start /
# kill / rm / port / top / images act on the service's container. What
# Docker holds is checked through the Engine API.

load helpers
load docker_helpers

unset COMPOSE_PROJECT_NAME COMPOSE_FILE COMPOSE_PROFILES

# The spec names no project: -p or COMPOSE_PROJECT_NAME does.
docker_spec() {
	spec <<'EOF2'
volumes:
  data: {}
  fixed: {name: NAME_FIXED}
stages:
  make:
    image: cpipe-test/busybox
    command: sh -c 'echo made > /data/made'
    volumes: [data:/data, fixed:/fixed]
  web:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'trap "exit 0" TERM; while :; do sleep 0.2; done'
    environment: {GREETING: hello-docker}
    working_dir: /data
    volumes: [data:/data]
    ports: ["127.0.0.1::8080"]
EOF2
	sed -i "s/NAME_FIXED/$P-fixed/" cpipe.yml
}

running_of_project() {
	api "http://d/containers/json?filters=$(filter "com.cpipe.project=$P")" | jq length
}

@test "docker: -p names the project's labels, volumes (<project>_<name>, or name:) and network" {
	docker_spec
	run dcpipe -p "$P" run make
	[ "$status" -eq 0 ] || fail "run make exited $status"
	api "http://d/volumes/${P}_data" | jq -e '.Labels["com.cpipe.project"] == "'"$P"'"' > /dev/null ||
		fail "volume ${P}_data missing or not labelled with the project"
	api "http://d/volumes/$P-fixed" | jq -e .Name > /dev/null || fail "the volume's name: was not honoured"
	api "http://d/networks/${P}_default" | jq -e .Name > /dev/null || fail "network ${P}_default missing"
	# COMPOSE_PROJECT_NAME from .env does the same.
	echo "COMPOSE_PROJECT_NAME=$P" > .env
	run dcpipe volume ls
	assert_contains "data"
	api "http://d/volumes?filters=$(filter "com.cpipe.project=$P")" | jq -e '.Volumes | length >= 1' > /dev/null ||
		fail "no volume labelled with the project"
}

@test "docker: exec runs in the service's container with its env and working_dir, forwarding the exit code" {
	docker_spec
	run dcpipe -p "$P" up
	[ "$status" -eq 0 ] || fail "up exited $status"
	run dcpipe -p "$P" exec web sh -c 'echo "$GREETING in $(pwd)"; echo to-stderr >&2; exit 4'
	[ "$status" -eq 4 ] || fail "exec exited $status, not the command's 4"
	assert_contains "hello-docker in /data"
	assert_contains "to-stderr"
	run dcpipe -p "$P" exec web no-such-command
	[ "$status" -eq 127 ] || [ "$status" -eq 126 ] || fail "an unknown command exited $status"
	run dcpipe -p "$P" exec make true
	[ "$status" -eq 1 ] || fail "exec into a job exited $status"
}

@test "docker: stop, start, kill, rm, port, top and images act on the service's container" {
	docker_spec
	run dcpipe -p "$P" up
	[ "$status" -eq 0 ] || fail "up exited $status"
	run dcpipe -p "$P" port web 8080
	[ "$status" -eq 0 ] || fail "port exited $status"
	id=$(jq -r .handle.container .cpipe/projects/$P/services/web.json)
	hp=$(api "http://d/containers/$id/json" | jq -r '.NetworkSettings.Ports["8080/tcp"][0].HostPort')
	[ "$output" = "127.0.0.1:$hp" ] || fail "port printed $output, Docker says $hp"
	run dcpipe -p "$P" top web
	assert_contains "sleep 0.2"
	run dcpipe -p "$P" images
	assert_contains "cpipe-test/busybox"
	assert_line_re "web +cpipe-test/busybox +sha256:[0-9a-f]{64}"
	# ls, elsewhere: the daemon knows the project by its containers' label.
	mkdir -p "$BATS_TEST_TMPDIR/elsewhere"
	(cd "$BATS_TEST_TMPDIR/elsewhere" && "$CPIPE_BIN" ls) > ls.out
	grep -qE "^$P +running\(1\) on docker" ls.out || fail "ls elsewhere lacks the project: $(cat ls.out)"
	run dcpipe -p "$P" stop
	assert_contains "stopped web"
	[ "$(running_of_project)" -eq 0 ] || fail "a container still runs after stop"
	# Without --runtime: the service comes back on the runtime that ran it.
	run cpipe -p "$P" start
	[ "$status" -eq 0 ] || fail "start exited $status"
	[ "$(running_of_project)" -eq 1 ] || fail "start did not bring the service's container back"
	run cpipe -p "$P" exec web true
	[ "$status" -eq 0 ] || fail "exec without --runtime exited $status"
	run cpipe -p "$P" kill web
	assert_contains "killed web"
	id=$(jq -r .handle.container .cpipe/projects/$P/services/web.json)
	[ "$(api "http://d/containers/$id/json" | jq -r .State.Running)" = false ] || fail "the container runs after kill"
	run dcpipe -p "$P" rm
	assert_contains "removed web"
	[ "$(api -o /dev/null -w '%{http_code}' "http://d/containers/$id/json")" = 404 ] ||
		fail "rm left the container"
}
