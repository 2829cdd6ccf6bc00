#!/usr/bin/env bats
# needs: kubernetes (tests/kubernetes-cluster, as root; under CI=true a
# cluster that does not come up fails the suite), docker and the Debian
# base images (tests/docker-setup, tests/docker-debian-images)
#
# examples/catgif on the two-node test cluster the way its README's
# "catgif on Kubernetes" runs it: the image built by docker and imported
# into both nodes, cpipe.kubernetes.yml merged over cpipe.yml, prepare and
# train on kc1, evaluate and infer on kc2, the server a Deployment behind a
# Service that infer reaches by name from the other node; the lock's
# digests equal the local runtime's (procs: 1), a second run skips
# everything, and `down -v` leaves nothing of the project in the cluster.

load helpers
load kube_helpers

EXAMPLE="$BATS_TEST_DIRNAME/../../examples/catgif"

# The cluster, the local build (the local runtime runs ./catgif) and the
# image on both nodes. Docker's layer cache and the import's check of the
# nodes' image IDs make this a few seconds when nothing changed.
setup_file() {
	kube_setup_file
	[ "$KREADY" = 1 ] || return 0
	export IMGWHY=""
	make -s -C "$EXAMPLE" > /dev/null || { IMGWHY="make -C examples/catgif failed"; return 0; }
	if ! "$BATS_TEST_DIRNAME/../docker-setup" > /dev/null 2>&1 ||
		! "$BATS_TEST_DIRNAME/../docker-debian-images" > /dev/null 2>&1; then
		IMGWHY="no docker or no Debian base images (tests/docker-setup, tests/docker-debian-images)"
		return 0
	fi
	local log="$BATS_FILE_TMPDIR/image.log" ctx="$BATS_FILE_TMPDIR/image"
	mkdir -p "$ctx"
	cp -r "$EXAMPLE"/{cpipe.yml,Dockerfile,.dockerignore,Makefile,src,tests,fixture} "$ctx"/
	if ! CATGIF_BUILDER_IMAGE=cpipe-test/debian-build:bookworm \
		CATGIF_RUNTIME_IMAGE=cpipe-test/debian-run:bookworm \
		"$CPIPE_BIN" -C "$ctx" --runtime docker build prepare > "$log" 2>&1; then
		IMGWHY="building catgif:latest failed: $(tail -5 "$log")"
	elif ! "$CLUSTER" import catgif:latest > "$log" 2>&1; then
		IMGWHY="importing catgif:latest failed: $(tail -5 "$log")"
	fi
}

setup() {
	kube_ready
	[ -z "$IMGWHY" ] || fail "$IMGWHY"
	PROJ="$BATS_TEST_TMPDIR/catgif"
	mkdir -p "$PROJ"
	cp -r "$EXAMPLE"/{cpipe.yml,cpipe.kubernetes.yml,Dockerfile,.dockerignore,Makefile,src,tests,fixture,catgif} "$PROJ"/
	cd "$PROJ" || return 1
	P="kcg-$(printf %04x $RANDOM)"
	NS="cpipe-$P"
	# The local run reads the committed fixture, the image its copy of it.
	export CATGIF_DATA=./fixture
	# infer records its URL in predictions.json: the same port on both runtimes.
	CATGIF_PORT=$((20000 + RANDOM % 20000))
	export CATGIF_PORT
	export CPIPE_KUBE_HELPER_IMAGE=cpipe-test/busybox:latest
	unset CPIPE_RUNTIME
}

teardown() {
	[ -n "${NS:-}" ] && [ "$KREADY" = 1 ] &&
		kubectl delete namespace "$NS" --wait=false > /dev/null 2>&1
	return 0
}

# The README's command, with this test's project name.
kcpipe() {
	cpipe -p "$P" -f cpipe.yml -f cpipe.kubernetes.yml "$@"
}

# Every object of the project the cluster still has, claims included
# (kube_helpers' project_objects leaves them out).
project_objects() {
	kubectl -n "$NS" get jobs,deployments,replicasets,services,configmaps,pods,pvc \
		-l "cpipe.dev/project=$P" -o name 2> /dev/null
}

# "STAGE NODE" for each pod of a stage the scheduler placed (pods go with
# their Job; the Scheduled events outlive them). Pod names are
# P-STAGE-RUN-...; the digests' helper pods (P-read-...) go anywhere.
placements() {
	kubectl -n "$NS" get events -o json |
		jq -r --arg p "$P-" '.items[] | select(.reason == "Scheduled") | .message |
			capture("assigned [^/]+/(?<pod>[^ ]+) to (?<node>[^ ]+)") |
			select(.pod | startswith($p)) | (.pod | ltrimstr($p) | split("-")[0]) as $s |
			select(["prepare", "train", "evaluate", "serve", "infer"] | index($s)) |
			"\($s) \(.node)"' | sort -u
}

# The digests a run recorded: every stage's outputs and metrics.
digests() {
	jq -S '.stages | map_values({outputs, metrics} | with_entries(select(.value != null)) |
		map_values(map_values(.digest)))' cpipe.lock
}

@test "catgif on the cluster: train on kc1, evaluate and infer on kc2 through the Service; local digests; skip; down -v" {
	run kcpipe run
	[ "$status" -eq 0 ] || fail "kubernetes run exited $status"
	assert_contains "serve is healthy"
	assert_contains "correct -> /catgif/results/predictions.json"
	jq -e '.stages.train.params.procs == "1"' cpipe.lock > /dev/null ||
		fail "train did not run with procs 1: $(jq -c .stages.train.params cpipe.lock)"
	jq -e '.stages.evaluate.metrics["catgif:/metrics.json"].values.test_images == 500' \
		cpipe.lock > /dev/null || fail "evaluate's metrics not recorded"

	local where
	where=$(placements)
	for s in prepare:kc1 train:kc1 serve:kc1 evaluate:kc2 infer:kc2; do
		[[ "$where" == *"${s%:*} ${s#*:}"* ]] || fail "${s%:*} not on ${s#*:}: $where"
	done
	[ "$(echo "$where" | wc -l)" -eq 5 ] || fail "expected 5 placements: $where"

	# The server's pod answered infer's five requests (its log, followed).
	[ "$(grep -c '^serve *| POST /predict 200 ' <<< "$output")" -eq 5 ] ||
		fail "the server did not answer 5 predictions"

	# The Jobs and the Deployment are gone; the claim stays for the next run.
	local i
	for ((i = 0; i < 120; i++)); do
		[ "$(project_objects | grep -vc '^persistentvolumeclaim/')" -eq 0 ] && break
		sleep 0.5
	done
	[ "$(project_objects | grep -vc '^persistentvolumeclaim/')" -eq 0 ] ||
		fail "left behind: $(project_objects)"
	local kdigests
	kdigests=$(digests)
	cp cpipe.lock "$BATS_TEST_TMPDIR/kubernetes.lock"

	run kcpipe run
	[ "$status" -eq 0 ] || fail "second kubernetes run exited $status"
	for s in prepare train evaluate infer; do
		assert_contains "$s is up to date, skipped"
	done
	refute_contains "starting service serve"
	refute_contains "correct ->"

	run kcpipe down -v
	[ "$status" -eq 0 ] || fail "down -v exited $status"
	for ((i = 0; i < 120; i++)); do
		[ -z "$(project_objects)" ] && break
		sleep 0.5
	done
	[ -z "$(project_objects)" ] || fail "left after down -v: $(project_objects)"

	# The same spec on the local runtime, in another directory.
	mkdir -p "$BATS_TEST_TMPDIR/local"
	cp -r "$EXAMPLE"/{cpipe.yml,Dockerfile,.dockerignore,Makefile,src,tests,fixture,catgif} \
		"$BATS_TEST_TMPDIR/local"/
	cd "$BATS_TEST_TMPDIR/local"
	run cpipe -p "$P" --runtime local run
	[ "$status" -eq 0 ] || fail "local run exited $status"
	local ldigests
	ldigests=$(digests)
	jq -e '[.prepare.outputs["catgif:/data"], .train.outputs["catgif:/model/catgif.ckpt"],
		.evaluate.metrics["catgif:/metrics.json"], .infer.outputs["catgif:/results"]] |
		all(startswith("sha256:"))' <<< "$kdigests" > /dev/null ||
		fail "a digest is missing from the kubernetes lock: $kdigests"
	[ "$kdigests" = "$ldigests" ] ||
		fail "digests differ: kubernetes $kdigests local $ldigests"
}
