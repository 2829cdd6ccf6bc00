# Shared by the Engine API suites: engine readiness (tests/docker-setup,
# tests/podman-setup), a project name per test, and teardown of everything
# that project left in the engine, checked through the Engine API.
# CPIPE_TEST_RUNTIME=podman (tests/run-all's "podman" suites) runs the same
# tests with `--runtime podman` against Podman's socket; the docker CLI some
# tests use then talks to Podman too (DOCKER_HOST).

RT=${CPIPE_TEST_RUNTIME:-docker}
if [ "$RT" = podman ]; then
	export CONTAINER_HOST=${CONTAINER_HOST:-unix:///run/podman/podman.sock}
	export DOCKER_HOST=$CONTAINER_HOST
	# The variable that points `--runtime $RT` at its engine.
	HOST_VAR=CONTAINER_HOST
else
	HOST_VAR=DOCKER_HOST
fi

setup_file() {
	export DOCKER_READY=0 DOCKER_WHY=""
	if ! command -v curl > /dev/null || ! command -v jq > /dev/null; then
		DOCKER_WHY="curl and jq are needed"
	elif DOCKER_WHY=$("$BATS_TEST_DIRNAME/../$RT-setup" 2>&1); then
		DOCKER_READY=1
	fi
}

setup() {
	[ "$DOCKER_READY" = 1 ] || skip "$RT unavailable: $DOCKER_WHY"
	PROJ="$BATS_TEST_TMPDIR/proj"
	mkdir -p "$PROJ"
	cd "$PROJ" || return 1
	P="cpt-$(printf %04x $RANDOM)-$BATS_TEST_NUMBER"
	SOCK=${DOCKER_HOST:-unix:///var/run/docker.sock}
	SOCK=${SOCK#unix://}
}

teardown() {
	[ -n "${P:-}" ] || return 0
	local f id
	f=$(filter "com.cpipe.project=$P")
	for id in $(api "http://d/containers/json?all=1&filters=$f" | jq -r '.[].Id'); do
		api -X DELETE "http://d/containers/$id?force=1" > /dev/null
	done
	for id in $(api "http://d/volumes?filters=$f" | jq -r '.Volumes[]?.Name'); do
		api -X DELETE "http://d/volumes/$id" > /dev/null
	done
	for id in $(api "http://d/networks?filters=$f" | jq -r '.[].Id'); do
		api -X DELETE "http://d/networks/$id" > /dev/null
	done
	for id in $(api "http://d/images/json?filters=$f" | jq -r '.[].Id'); do
		api -X DELETE "http://d/images/$id?force=1" > /dev/null
	done
}

api() {
	curl -sS --unix-socket "$SOCK" "$@"
}

# A URL-escaped filters= value for one label.
filter() {
	printf '{"label":["%s"]}' "$1" | jq -sRr @uri
}

# Names of the containers (any state) labelled with this test's project.
project_containers() {
	api "http://d/containers/json?all=1&filters=$(filter "com.cpipe.project=$P")" | jq -r '.[].Names[0]'
}

dcpipe() {
	cpipe --runtime "$RT" "$@"
}

# Some line of the output matches the extended regular expression $1.
assert_line_re() {
	grep -qE -- "$1" <<< "$output" || fail "expected a line matching: $1"
}
