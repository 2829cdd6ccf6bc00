# Shared by the suites on the test cluster (tests/kubernetes-cluster):
# bring it up once per file, and, per test, skip when it is not there
# (under CI=true, tests/run-all counts a skip as a failure) or point
# kubectl and cpipe at it. A suite with its own setup_file calls
# kube_setup_file from it.

CLUSTER="$BATS_TEST_DIRNAME/../kubernetes-cluster"

setup_file() {
	kube_setup_file
}

kube_setup_file() {
	export KREADY=0 KWHY=""
	if [ "$(id -u)" -ne 0 ]; then
		KWHY="needs root"
	elif KOUT=$("$CLUSTER" up 2> "$BATS_FILE_TMPDIR/up.err"); then
		KREADY=1
		printf '%s\n' "$KOUT" > "$BATS_FILE_TMPDIR/env"
	else
		KWHY="tests/kubernetes-cluster up failed: $(tail -5 "$BATS_FILE_TMPDIR/up.err")"
	fi
}

# Skips unless the cluster is up; sets KUBECONFIG.
kube_ready() {
	[ "$KREADY" = 1 ] || skip "$KWHY"
	# shellcheck disable=SC1091
	. "$BATS_FILE_TMPDIR/env"
}

# A test's project on the cluster: skips unless the cluster is up (see
# kube_ready), makes $PROJ the working directory and names the project
# $P ("$1-<random>-<test number>") and its namespace $NS.
kube_project() {
	kube_ready
	PROJ="$BATS_TEST_TMPDIR/proj"
	mkdir -p "$PROJ"
	cd "$PROJ" || return 1
	P="$1-$(printf %04x $RANDOM)-$BATS_TEST_NUMBER"
	NS="cpipe-$P"
	export CPIPE_RUNTIME=kubernetes CPIPE_KUBE_HELPER_IMAGE=cpipe-test/busybox:latest
}

# Deletes the test's namespace, without waiting for it to go.
kube_project_teardown() {
	[ -n "${NS:-}" ] && [ "$KREADY" = 1 ] &&
		kubectl delete namespace "$NS" --wait=false > /dev/null 2>&1
	return 0
}

kcpipe() {
	"$CPIPE_BIN" --runtime kubernetes "$@"
}

# Every object of kinds that run something, labelled with the project.
project_objects() {
	kubectl -n "$NS" get jobs,deployments,services,configmaps,pods \
		-l "cpipe.dev/project=$P" -o name 2> /dev/null
}

# Waits up to $1 seconds for project_objects to be empty.
wait_no_objects() {
	local i
	for ((i = 0; i < $1 * 4; i++)); do
		[ -z "$(project_objects)" ] && return 0
		sleep 0.25
	done
	return 1
}
