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
