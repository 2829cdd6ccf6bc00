#!/usr/bin/env bats
# examples/catgif through cpipe on the committed fixture: the whole
# pipeline on both runtimes, resume, the GIFs, bad requests to the server,
# a truncated IDX file, and Debian's docker-compose on the compose file.

load helpers

EXAMPLE="$BATS_TEST_DIRNAME/../../examples/catgif"

setup_file() {
	make -s -C "$EXAMPLE" > /dev/null
}

setup() {
	PROJ="$BATS_TEST_TMPDIR/catgif"
	mkdir -p "$PROJ"
	cp -r "$EXAMPLE"/{cpipe.yml,docker-compose.yml,Dockerfile,.dockerignore,Makefile,src,tests,fixture,catgif} "$PROJ"/
	cd "$PROJ" || return 1
	export CATGIF_DATA=./fixture
	CATGIF_PORT=$((20000 + RANDOM % 20000))
	export CATGIF_PORT
}

gifcheck() {
	"$EXAMPLE/build/gifcheck" "$@"
}

@test "catgif runs prepare -> train -> evaluate -> serve -> infer on the local runtime" {
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "serve is healthy"
	assert_contains "correct -> /catgif/results/predictions.json"
	res="$(vol catgif)/results"
	jq -e '.accuracy > 0.5 and .test_images == 500 and (.per_class_accuracy | length) == 10 and .per_class_accuracy.Sneaker != null and (.confusion_matrix | length) == 10 and .checkpoint_epoch == 1' \
		"$(vol catgif)/metrics.json" > /dev/null || fail "metrics: $(head -c 400 "$(vol catgif)/metrics.json")"
	[ "$(jq '.predictions | length' "$res/predictions.json")" -eq 5 ] || fail "predictions.json"
	# Five GIFs that giflib decodes, named by the true and predicted class recorded for them.
	[ "$(ls "$res"/*.gif | wc -l)" -eq 5 ] || fail "expected 5 GIFs"
	for i in 0 1 2 3 4; do
		file=$(jq -r ".predictions[$i].file" "$res/predictions.json")
		class=$(jq -r ".predictions[$i].class" "$res/predictions.json" | tr 'A-Z/ ' 'a-z--')
		truth=$(jq -r ".predictions[$i].true_class" "$res/predictions.json" | tr 'A-Z/ ' 'a-z--')
		[[ "$file" == 0$i-true-$truth-pred-$class.gif ]] || fail "GIF name $file does not match truth $truth, prediction $class"
		gifcheck "$res/$file" | grep -q " 224x224 " || fail "$file does not decode as a 224x224 GIF"
	done
	# The second run reuses everything, and the server is not even started.
	run cpipe run
	[ "$status" -eq 0 ] || fail "second run failed"
	assert_contains "train is up to date, skipped"
	assert_contains "infer is up to date, skipped"
	refute_contains "starting service serve"
	run cpipe lineage catgif:/results/predictions.json
	[ "$status" -eq 0 ] || fail "lineage failed"
	assert_contains "stage infer"
	assert_contains "stage train"
	assert_contains "./fixture"
}

@test "train resumes from the checkpoint: the epoch counter goes on and accuracy does not reset" {
	cpipe run evaluate > /dev/null 2>&1 || fail "first run failed"
	acc1=$(jq .accuracy "$(vol catgif)/metrics.json")
	run cpipe run --force train
	[ "$status" -eq 0 ] || fail "forced train failed"
	assert_contains "resuming"
	run cpipe run evaluate
	[ "$status" -eq 0 ] || fail "evaluate failed"
	jq -e '.checkpoint_epoch == 2' "$(vol catgif)/metrics.json" > /dev/null || fail "not at epoch 2"
	acc2=$(jq .accuracy "$(vol catgif)/metrics.json")
	awk -v a="$acc1" -v b="$acc2" 'BEGIN { exit !(b >= a - 0.02) }' || fail "accuracy reset: $acc1 -> $acc2"
	run cpipe metrics --diff latest~1
	[ "$status" -eq 0 ] || fail "metrics --diff failed"
	assert_contains "checkpoint_epoch"
}

@test "with procs 1 and a fixed seed the lock is byte-identical across clean runs" {
	cpipe run evaluate > /dev/null 2>&1 || fail "first run failed"
	# Kept outside the project: the build context is an input (code) of
	# every stage on the local runtime.
	cp cpipe.lock "$BATS_TEST_TMPDIR/first.lock"
	rm -rf .cpipe cpipe.lock
	cpipe run evaluate > /dev/null 2>&1 || fail "second run failed"
	cmp cpipe.lock "$BATS_TEST_TMPDIR/first.lock" || fail "checkpoints differ between clean runs"
}

@test "status explains a --set and run applies it to exactly the affected stages" {
	cpipe run evaluate > /dev/null 2>&1 || fail "first run failed"
	run cpipe run --set train.lr=0.01 evaluate
	[ "$status" -eq 0 ] || fail "run --set failed"
	assert_contains "prepare is up to date, skipped"
	refute_contains "train is up to date"
	run cpipe status
	[ "$status" -eq 0 ] || fail "status failed"
	# An experiment: the lock keeps the spec's lr, so the volume's model
	# is what differs, and the spec's one is in the store.
	[[ "$output" =~ train\ +restorable\ output\ catgif:/model/catgif.ckpt\ changed ]] ||
		fail "status does not say train's checkpoint changed"
	assert_contains "upstream train is stale"
	run cpipe run evaluate
	[ "$status" -eq 0 ] || fail "plain run after the experiment failed"
	assert_contains "train restored from run "
}

@test "the server answers bad requests with 4xx and stays up" {
	cpipe run evaluate > /dev/null 2>&1 || fail "run failed"
	run cpipe up serve
	[ "$status" -eq 0 ] || fail "up failed"
	url="http://127.0.0.1:$CATGIF_PORT"
	code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
	[ "$(code -X POST --data-binary 'not an image' "$url/predict")" -ge 400 ] || fail "garbage accepted"
	[ "$(code -X POST --data-binary '[1,2,3]' -H 'Content-Type: application/json' "$url/predict")" -ge 400 ] || fail "short JSON accepted"
	head -c 2000000 /dev/zero > big.bin
	[ "$(code -X POST --data-binary @big.bin "$url/predict")" = 413 ] || fail "oversized body not 413"
	[ "$(code "$url/nope")" = 404 ] || fail "unknown path not 404"
	[ "$(code "$url/healthz")" = 200 ] || fail "server died after bad requests"
	curl -s "$url/info" | jq -e '.epoch == 1 and (.checkpoint_sha256 | length) == 64' > /dev/null || fail "/info"
	cpipe down > /dev/null
}

@test "a truncated IDX file fails prepare with a clear error" {
	mkdir -p broken
	cp fixture/* broken/
	gzip -dc fixture/train-images-idx3-ubyte.gz | head -c 100000 | gzip > broken/train-images-idx3-ubyte.gz
	CATGIF_DATA=./broken run cpipe run prepare
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "train-images-idx3-ubyte"
	assert_contains "truncated"
}

@test "catgif runs unchanged on the docker runtime" {
	"$BATS_TEST_DIRNAME/../docker-setup" > /dev/null 2>&1 || skip "docker unavailable"
	"$BATS_TEST_DIRNAME/../docker-debian-images" > /dev/null || skip "no Debian base images"
	export CATGIF_BUILDER_IMAGE=cpipe-test/debian-build:bookworm CATGIF_RUNTIME_IMAGE=cpipe-test/debian-run:bookworm
	# The docker runtime reads the fixture through a bind mount: absolute path.
	export CATGIF_DATA="$PROJ/fixture"
	run cpipe --runtime docker run
	status_docker=$status
	out_docker=$output
	cp cpipe.lock docker.lock
	cpipe --runtime docker down -v > /dev/null 2>&1 || true
	output=$out_docker
	[ "$status_docker" -eq 0 ] || fail "docker run failed"
	assert_contains "serve is healthy"
	jq -e '.stages.evaluate.metrics["catgif:/metrics.json"].values.test_images == 500' docker.lock > /dev/null || fail "metrics not recorded"
	# Same code, seed and data: the same checkpoint as the local runtime.
	rm -rf .cpipe cpipe.lock
	cpipe --runtime local run evaluate > /dev/null 2>&1 || fail "local run failed"
	[ "$(jq -r '.stages.train.outputs["catgif:/model/catgif.ckpt"].digest' cpipe.lock)" = \
		"$(jq -r '.stages.train.outputs["catgif:/model/catgif.ckpt"].digest' docker.lock)" ] ||
		fail "checkpoints differ between runtimes"
}

@test "Debian's docker-compose runs the compose file beside it" {
	command -v docker-compose > /dev/null || skip "docker-compose not installed"
	"$BATS_TEST_DIRNAME/../docker-setup" > /dev/null 2>&1 || skip "docker unavailable"
	"$BATS_TEST_DIRNAME/../docker-debian-images" > /dev/null || skip "no Debian base images"
	export CATGIF_BUILDER_IMAGE=cpipe-test/debian-build:bookworm CATGIF_RUNTIME_IMAGE=cpipe-test/debian-run:bookworm
	export CATGIF_DATA="$PROJ/fixture"
	P="cgc$RANDOM"
	dc() { docker-compose -p "$P" -f docker-compose.yml "$@"; }
	rc=0
	{ dc run --rm prepare && dc run --rm train && dc run --rm evaluate && dc up -d serve &&
		dc run --rm infer; } > compose.log 2>&1 || rc=$?
	dc down -v > /dev/null 2>&1 || true
	output=$(cat compose.log)
	[ "$rc" -eq 0 ] || fail "docker-compose failed"
	assert_contains "correct"
}
