#!/usr/bin/env bats
# engine: docker
# A course-shaped project (tests/course/mnist-hogwild: the EMLO "Docker II"
# shape) run unchanged: the program lives in the Dockerfile (WORKDIR, COPY,
# ENV, CMD), the compose file declares no outputs, train is a Hogwild
# trainer (Debian's python3-torch) that resumes from its checkpoint in a
# named volume. On the local runtime and on Docker.

load helpers
load docker_helpers

FIXTURE="$BATS_TEST_DIRNAME/../course/mnist-hogwild"
PY=/usr/bin/python3

setup_file() {
	export DOCKER_READY=0 DOCKER_WHY=""
	if ! DOCKER_WHY=$("$BATS_TEST_DIRNAME/../docker-setup" 2>&1); then
		return 0
	fi
	if ! DOCKER_WHY=$("$BATS_TEST_DIRNAME/../docker-debian-images" --python 2>&1); then
		return 0
	fi
	if ! DOCKER_WHY=$($PY -c 'import torch' 2>&1); then
		DOCKER_WHY="Debian's python3-torch is needed: $DOCKER_WHY"
		return 0
	fi
	DOCKER_READY=1
}

setup() {
	[ "$DOCKER_READY" = 1 ] || skip "course fixture needs docker and python3-torch: $DOCKER_WHY"
	P="cpt-$(printf %04x $RANDOM)-$BATS_TEST_NUMBER"
	PROJ="$BATS_TEST_TMPDIR/$P"
	cp -r "$FIXTURE" "$PROJ"
	cd "$PROJ" || return 1
	SOCK=${DOCKER_HOST:-unix:///var/run/docker.sock}
	SOCK=${SOCK#unix://}
}

# The host directory of the local runtime's volume $1.
volume_dir() {
	cpipe volume inspect "$1" | jq -r '.[0].mountpoint'
}

# Epochs recorded in the checkpoint of the local volume.
ckpt_epochs() {
	$PY -c 'import sys, torch; print(torch.load(sys.argv[1])["epochs"])' \
		"$(volume_dir mnist)/mnist_cnn.pt"
}

# How many recorded runs actually executed stage $1 (not skipped/restored).
times_ran() {
	local id n=0 st
	for id in $(cpipe runs --json | jq -r '.[].id'); do
		st=$(cpipe --json show "$id" | jq -r --arg s "$1" '.stages[] | select(.name == $s) | .status')
		case "$st" in "" | skipped | restored) ;; *) n=$((n + 1)) ;; esac
	done
	echo "$n"
}

@test "local: run train, run evaluate, run infer train once, as the course runs them" {
	run_ok run train
	assert_contains "saved model/mnist_cnn.pt after 1 epoch(s)"
	# Two Hogwild processes trained in the sandbox.
	assert_contains "process 1: loss"
	run_ok run evaluate
	assert_contains "accuracy"
	run_ok run infer
	[ "$(ls results | grep -c '^[0-4]-true-[0-9]-pred-[0-9]\.pgm$')" -eq 5 ] || fail "$(ls results)"
	[ "$(times_ran train)" -eq 1 ] || fail "train ran $(times_ran train) times"
	[ "$(ckpt_epochs)" -eq 1 ] || fail "checkpoint has $(ckpt_epochs) epochs"
	jq -e '.epochs == 1' "$(volume_dir mnist)/eval_results.json"
	# Again: evaluate and infer are known. (train is not: evaluate's
	# eval_results.json appeared in the volume train mounts, and with no
	# depends_on cpipe cannot tell that train never reads it.)
	run_ok run evaluate
	assert_contains "evaluate is up to date, skipped"
	run_ok run infer
	assert_contains "infer is up to date, skipped"
	[ "$(times_ran train)" -eq 1 ] || fail "train ran $(times_ran train) times"
	[ "$(times_ran evaluate)" -eq 1 ] || fail "evaluate ran $(times_ran evaluate) times"
	[ "$(times_ran infer)" -eq 1 ] || fail "infer ran $(times_ran infer) times"
	[ "$(ckpt_epochs)" -eq 1 ]
}

@test "local: the RUN step is named as skipped and the code comes from the build context" {
	run_ok run train
	assert_contains "Dockerfile:11"
	# Nothing of the image's code was copied into the project or the volume.
	[ ! -e "$(volume_dir mnist)/train.py" ]
	run ls -a "$PROJ"
	refute_contains "opt"
}

@test "local: editing the trainer makes train stale, names the file, and resumes" {
	run_ok run train
	run_ok status
	[[ "$output" =~ train[[:space:]]+fresh ]] || fail "train is not fresh after its run"
	echo "# a tweak" >> train.py
	run_ok status
	assert_contains "train.py"
	[[ "$output" =~ train[[:space:]]+stale ]] || fail "train is not stale"
	run_ok run train
	assert_contains "resuming from model/mnist_cnn.pt after 1 epoch(s)"
	[ "$(ckpt_epochs)" -eq 2 ]
	[ "$(times_ran train)" -eq 2 ]
}

@test "local and docker: the same outputs, digest for digest" {
	export NUM_PROCESSES=1
	run_ok run train evaluate infer
	local lock_local
	lock_local=$(jq -S '.stages | map_values(.outputs)' cpipe.lock)
	[ "$(jq '.train | length' <<< "$lock_local")" -ge 1 ] || fail "no observed outputs: $lock_local"
	local other="$BATS_TEST_TMPDIR/$P-docker"
	cp -r "$FIXTURE" "$other"
	cd "$other"
	run cpipe --runtime docker -p "$P" run train evaluate infer
	[ "$status" -eq 0 ] || fail "docker run exited $status"
	assert_contains "saved model/mnist_cnn.pt after 1 epoch(s)"
	local lock_docker
	lock_docker=$(jq -S '.stages | map_values(.outputs)' cpipe.lock)
	[ "$lock_local" = "$lock_docker" ] || fail "local: $lock_local
docker: $lock_docker"
	cmp <(ls "$PROJ/results") <(ls results)
}
