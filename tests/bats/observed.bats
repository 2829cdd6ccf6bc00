#!/usr/bin/env bats
# Observed outputs: a compose file declares no outputs, yet its stages are
# skipped, explained and restored. A course-shaped project: train resumes
# from a checkpoint in a named volume (so every real training shows in the
# checkpoint's epoch count), evaluate reads it and writes metrics, infer
# reads it and writes a few files.

load helpers
load docker_helpers

# The engine suites' setup and teardown (a project name, everything
# labelled with it removed after), for the docker test; the local tests run
# whether or not an engine is there.
eval "$(declare -f setup | sed '1s/^setup/engine_setup/')"
eval "$(declare -f teardown | sed '1s/^teardown/engine_teardown/')"

setup() {
	DOCKER_READY=1 engine_setup || return 1
	cat > train.sh <<'EOF'
n=0
[ -f /opt/mount/model.ckpt ] && n=$(cat /opt/mount/model.ckpt)
echo $((n + 1)) > /opt/mount/model.ckpt
echo "trained epoch $((n + 1))"
EOF
	cat > evaluate.sh <<'EOF'
cat /opt/mount/model.ckpt > /dev/null
echo '{"acc": 0.9}' > /opt/mount/metrics.json
EOF
	cat > infer.sh <<'EOF'
mkdir -p /opt/mount/results
for i in 1 2 3; do echo "prediction $i from epoch $(cat /opt/mount/model.ckpt)" > /opt/mount/results/out$i.txt; done
EOF
}

# The course's compose file: no inputs, no outputs. $1: extra keys for
# every service (an image for docker).
course_compose() {
	cat > docker-compose.yml <<EOF
name: $P
services:
  train:
    ${1:-}
    command: sh train.sh
    working_dir: /work
    volumes: [mnist:/opt/mount, ./:/work:ro]
  evaluate:
    ${1:-}
    command: sh evaluate.sh
    working_dir: /work
    volumes: [mnist:/opt/mount, ./:/work:ro]
    depends_on: [train]
  infer:
    ${1:-}
    command: sh infer.sh
    working_dir: /work
    volumes: [mnist:/opt/mount, ./:/work:ro]
    depends_on: [train]
volumes:
  mnist:
EOF
}

# How many times a stage really ran, over every run record.
times_ran() {
	jq -s --arg s "$1" '[.[].stages[] | select(.name == $s and .status == "ran")] | length' \
		.cpipe/runs/*.json
}

ckpt_digest() {
	jq -r '.stages.train.outputs["mnist:/model.ckpt"].digest' cpipe.lock
}

one_digest="sha256:$(echo 1 | sha256sum | cut -d' ' -f1)"

@test "run train; run evaluate; run infer on a compose file trains once" {
	course_compose
	run_ok run train
	assert_contains "trained epoch 1"
	run_ok run evaluate
	assert_contains "train is up to date, skipped"
	run_ok run infer
	assert_contains "train is up to date, skipped"
	refute_contains "trained epoch"
	[ "$(times_ran train)" = 1 ] || fail "train ran $(times_ran train) times"
	[ "$(times_ran evaluate)" = 1 ] && [ "$(times_ran infer)" = 1 ] || fail "evaluate/infer ran more than once"
	[ "$(cat .cpipe/volumes/mnist/model.ckpt)" = 1 ] || fail "the checkpoint was trained again"
	[ "$(ckpt_digest)" = "$one_digest" ] || fail "locked checkpoint digest $(ckpt_digest)"
	# Observed outputs are recorded like declared ones: the run record and
	# `runs --json` say what each stage produced.
	jq -e '.stages.evaluate.outputs["mnist:/metrics.json"].digest | startswith("sha256:")' cpipe.lock > /dev/null ||
		fail "metrics.json is not evaluate's observed output"
	jq -e '.stages.infer.outputs["mnist:/results"].files == 3' cpipe.lock > /dev/null ||
		fail "infer's results directory is not one observed output"
	run cpipe runs --json
	[ "$(echo "$output" | jq '[.[].stages.ran] | add')" = 3 ] || fail "runs --json counts other than 3 stages ran"
	# A second run train skips it.
	run_ok run train
	assert_contains "train is up to date, skipped"
	[ "$(cat .cpipe/volumes/mnist/model.ckpt)" = 1 ] || fail "the second run train trained"
	run_ok status train
	assert_contains "fresh"
}

@test "editing the trainer script makes train stale and status names the file" {
	course_compose
	run_ok run train
	echo "# tuned" >> train.sh
	run cpipe status --check train
	[ "$status" -eq 1 ] || fail "status --check exited $status"
	assert_contains "input ./train.sh changed"
	run_ok run train
	assert_contains "trained epoch 2"
	[ "$(times_ran train)" = 2 ] || fail "train ran $(times_ran train) times"
	run_ok run train
	assert_contains "train is up to date, skipped"
}

@test "a deleted observed output makes the stage stale, and run restores it" {
	course_compose
	run_ok run infer
	want=$(jq -r '.stages.infer.outputs["mnist:/results"].digest' cpipe.lock)
	rm .cpipe/volumes/mnist/results/out2.txt
	run cpipe status infer
	assert_contains "output mnist:/results changed"
	run_ok run infer
	assert_contains "infer restored from run"
	[ -f .cpipe/volumes/mnist/results/out2.txt ] || fail "out2.txt not restored"
	[ "$(times_ran infer)" = 1 ] || fail "infer ran again instead of being restored"
	run_ok status infer
	assert_contains "fresh"
	# A checkpoint deleted: train is restored, not trained again.
	rm .cpipe/volumes/mnist/model.ckpt
	run cpipe status train
	assert_contains "output mnist:/model.ckpt missing"
	run_ok run train
	assert_contains "train restored from run"
	[ "$(cat .cpipe/volumes/mnist/model.ckpt)" = 1 ] || fail "checkpoint not restored as it was"
	[ "$want" = "$(jq -r '.stages.infer.outputs["mnist:/results"].digest' cpipe.lock)" ] || fail "results digest moved"
}

@test "a new file in the volume makes the stage that could read it stale" {
	course_compose
	run_ok run train
	# Something else lands in the volume: train could read it, so it reruns.
	echo extra > .cpipe/volumes/mnist/extra.txt
	run cpipe status train
	assert_contains "input mnist:/ changed"
}

@test "an observed output holding a secret value is recorded by digest, never stored" {
	echo "s3cr3t-$RANDOM-obs" > token.txt
	secret=$(cat token.txt)
	cat > docker-compose.yml <<EOF
secrets:
  token: {file: ./token.txt}
services:
  leak:
    command: sh -c 'cp /run/secrets/token /opt/mount/copy; echo fine > /opt/mount/plain'
    volumes: [mnist:/opt/mount]
    secrets: [token]
volumes:
  mnist:
EOF
	run_ok run leak
	assert_contains "mnist:/copy holds a secret value: recorded by digest, not stored"
	refute_contains "$secret"
	! grep -r -e "$secret" .cpipe/store .cpipe/runs .cpipe/cache cpipe.lock || fail "the secret is in a cpipe file"
	jq -e '.stages.leak.outputs["mnist:/copy"].digest | startswith("sha256:")' cpipe.lock > /dev/null ||
		fail "the copy is not recorded by digest"
	jq -e '.stages.leak.outputs["mnist:/plain"]' cpipe.lock > /dev/null || fail "plain output missing"
	run_ok run leak
	assert_contains "leak is up to date, skipped"
}

@test "outputs: [] keeps a stage that always runs" {
	cat > docker-compose.yml <<EOF
services:
  train:
    command: sh train.sh
    volumes: [mnist:/opt/mount]
    outputs: []
volumes:
  mnist:
EOF
	run_ok run train
	assert_contains "trained epoch 1"
	run_ok run train
	assert_contains "trained epoch 2"
	run_ok status train
	assert_contains "declares no outputs, so it always runs"
	[ "$(jq -r '.stages.train.outputs | length' cpipe.lock)" = 0 ] || fail "outputs were observed"
}

# Two stages changing a volume every way there is, in one run; $1: the
# project directory, $2: extra keys (an image). The second one changes
# what the first created.
journal_project() {
	mkdir -p "$1"
	cat > "$1/change.sh" <<'EOF'
cd /opt/mount
echo changed > change.txt
rm gone.txt
rm -r old
mkdir -p results/deep
echo 1 > results/out1.txt
echo 2 > results/deep/out2.txt
mv movedir moved
mv keep.txt d1/kept.txt
chmod 755 mode.sh
m=$(stat -c %.9Y same.bin)
printf bbbb > same.bin
touch -d "@$m" same.bin
rm becomes_dir
mkdir becomes_dir
echo inner > becomes_dir/inner
ln -s change.txt link
EOF
	cat > "$1/more.sh" <<'EOF'
cd /opt/mount
echo 3 > results/deep/out3.txt
echo 22 > results/deep/out2.txt
rm moved/x
mv results/out1.txt d1/out1.txt
EOF
	cat > "$1/docker-compose.yml" <<EOF
name: ${P:-journal}
services:
  change:
    ${2:-}
    command: sh change.sh
    working_dir: /work
    volumes: [mnist:/opt/mount, ./:/work:ro]
  more:
    ${2:-}
    command: sh more.sh
    working_dir: /work
    volumes: [mnist:/opt/mount, ./:/work:ro]
    depends_on: [change]
volumes:
  mnist:
EOF
}

# The volume's first content, on the host ($1: its host path).
journal_seed() {
	mkdir -p "$1/old" "$1/movedir" "$1/d1/d2"
	echo same > "$1/keep.txt"
	echo before > "$1/change.txt"
	echo x > "$1/gone.txt"
	echo a > "$1/old/a"
	echo x > "$1/movedir/x"
	echo echo > "$1/mode.sh"
	printf aaaa > "$1/same.bin"
	echo f > "$1/becomes_dir"
	echo deep > "$1/d1/d2/deep.txt"
}

locked() {
	jq -S '.stages | map_values({key, inputs, outputs})' "$1/cpipe.lock"
}

@test "the change journal records exactly what listing the volume again would" {
	journal_project a
	journal_project b
	journal_seed a/.cpipe/volumes/mnist
	journal_seed b/.cpipe/volumes/mnist
	CPIPE_OBSERVE_TRACE=1 run_ok -C a run
	[ "$(grep -c 'mnist:/: from the journal, [0-9]* paths changed' <<< "$output")" = 2 ] ||
		fail "both stages should have been observed through the journal"
	refute_contains "listing in full"
	CPIPE_OBSERVE_JOURNAL=0 run_ok -C b run
	[ "$(locked a)" = "$(locked b)" ] || fail "journal: $(locked a) full listing: $(locked b)"
	jq -e '.stages.change.outputs["mnist:/same.bin"].digest' a/cpipe.lock > /dev/null ||
		fail "the same-size rewrite was missed"
	jq -e '.stages.more.outputs["mnist:/results/deep/out3.txt"]' a/cpipe.lock > /dev/null ||
		fail "a file in a directory the first stage made was missed"
	# And status, listing afresh, judges both the same way.
	run cpipe -C a status
	sa=$(sed 's/from run [0-9TZ-]*[0-9a-f]*/from run R/' <<< "$output")
	run cpipe -C b status
	sb=$(sed 's/from run [0-9TZ-]*[0-9a-f]*/from run R/' <<< "$output")
	[ "$sa" = "$sb" ] || fail "status after the journal: $sa; after full listings: $sb"
}

@test "a journal in doubt lists the volume in full" {
	journal_project a
	journal_seed a/.cpipe/volumes/mnist
	# More events than the inotify queue holds.
	cat > a/change.sh <<'EOF'
cd /opt/mount/d1 && i=0 && while [ $i -lt 6000 ]; do echo $i > f$i; i=$((i + 1)); done
EOF
	CPIPE_OBSERVE_TRACE=1 run_ok -C a run change
	assert_contains "mnist:/: journal in doubt (the event queue overflowed"
	[ "$(jq '.stages.change.outputs | length' a/cpipe.lock)" = 6000 ] || fail "outputs missed"
	run_ok -C a status change
	assert_contains "fresh"
}

@test "docker: the course trains once, with the same output digests as local" {
	[ "$DOCKER_READY" = 1 ] || skip "$RT unavailable: $DOCKER_WHY"
	course_compose "image: cpipe-test/busybox:latest"
	run_ok --runtime local run train
	run_ok --runtime local run evaluate
	run_ok --runtime local run infer
	want=$(jq -S '[.stages | to_entries[] | {stage: .key, outputs: (.value.outputs | map_values(.digest))}]' cpipe.lock)
	rm -rf .cpipe cpipe.lock
	# The container's writes into the volume reach the inotify watches.
	CPIPE_OBSERVE_TRACE=1 run_ok --runtime "$RT" run train
	assert_contains "trained epoch 1"
	assert_contains "mnist:/: from the journal, 1 paths changed"
	run_ok --runtime "$RT" run evaluate
	assert_contains "train is up to date, skipped"
	run_ok --runtime "$RT" run infer
	assert_contains "train is up to date, skipped"
	refute_contains "trained epoch"
	[ "$(times_ran train)" = 1 ] || fail "train ran $(times_ran train) times on $RT"
	[ "$(ckpt_digest)" = "$one_digest" ] || fail "locked checkpoint digest $(ckpt_digest)"
	got=$(jq -S '[.stages | to_entries[] | {stage: .key, outputs: (.value.outputs | map_values(.digest))}]' cpipe.lock)
	[ "$got" = "$want" ] || fail "digests differ: $got vs $want"
	run_ok --runtime "$RT" run train
	assert_contains "train is up to date, skipped"
	# Volumes streamed through the Engine API instead of read on the
	# host: the same listings, so the same keys.
	CPIPE_ARTIFACTS_VIA_ARCHIVE=1 run_ok --runtime "$RT" run train
	assert_contains "train is up to date, skipped"
	echo "# tuned" >> train.sh
	run cpipe --runtime "$RT" status train
	assert_contains "input ./train.sh changed"
}

teardown() {
	[ "${DOCKER_READY:-0}" = 1 ] || return 0
	engine_teardown
}
