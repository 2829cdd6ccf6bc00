#!/usr/bin/env bats
# Artifacts through the Docker runtime: the same output digests as the
# local runtime (read through the volume's host path and through the
# archive API), image IDs in records and cache keys, rebuilds.

load helpers
load docker_helpers

# A deterministic 3-stage pipeline whose spec runs on both runtimes.
three_stage_spec() {
	spec <<EOF
name: $P
volumes:
  data: {}
x-s: &s
  image: cpipe-test/busybox
  volumes: [data:/d]
stages:
  one:
    <<: *s
    command: sh -c 'mkdir -p /d/out && seq 1 500 > /d/out/numbers && echo x > /d/out/x'
    outputs: [data:/out]
  two:
    <<: *s
    command: sh -c 'sort -r /d/out/numbers > /d/sorted'
    inputs: [data:/out]
    outputs: [data:/sorted]
  three:
    <<: *s
    command: sh -c 'wc -l < /d/sorted > /d/count'
    inputs: [data:/sorted]
    outputs: [data:/count]
EOF
}

output_digests() {
	jq -S '[.stages | to_entries[] | {stage: .key, outputs: (.value.outputs | map_values(.digest))}]' cpipe.lock
}

@test "the same pipeline gives the same output digests on docker as on the local runtime" {
	three_stage_spec
	run cpipe --runtime local run
	[ "$status" -eq 0 ] || fail "local run failed"
	local_digests=$(output_digests)
	rm -rf .cpipe cpipe.lock
	run dcpipe run
	[ "$status" -eq 0 ] || fail "docker run failed"
	[ "$(output_digests)" = "$local_digests" ] || fail "digests differ: $(output_digests) vs $local_digests"
	# Read through the archive API instead of the mountpoint: same digests.
	CPIPE_ARTIFACTS_VIA_ARCHIVE=1 run dcpipe verify
	[ "$status" -eq 0 ] || fail "archive-path digests differ from the lock: $output"
	want="sha256:$(seq 1 500 | sort -r | sha256sum | cut -d' ' -f1)"
	jq -e --arg w "$want" '.stages.two.outputs["data:/sorted"].digest == $w' cpipe.lock > /dev/null ||
		fail "digest of data:/sorted is not sha256sum's"
	run dcpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "one is up to date, skipped"
	assert_contains "three is up to date, skipped"
}

@test "records name the image ID; an identical rebuild stays fresh, a changed Dockerfile makes stages stale" {
	mkdir -p ctx
	cat > ctx/Dockerfile <<'EOF'
FROM cpipe-test/busybox
RUN echo v1 > /version
EOF
	spec <<EOF
name: $P
volumes:
  data: {}
stages:
  train:
    build: ./ctx
    image: $P-img:latest
    command: sh -c 'cat /version > /d/model'
    volumes: [data:/d]
    outputs: [data:/model]
  evaluate:
    image: $P-img:latest
    command: sh -c 'wc -c < /d/model > /d/metrics'
    volumes: [data:/d]
    inputs: [data:/model]
    outputs: [data:/metrics]
EOF
	run dcpipe run
	[ "$status" -eq 0 ] || fail "first run failed"
	id=$(api "http://d/images/$P-img:latest/json" | jq -r .Id)
	rec=$(ls .cpipe/runs/*.json | tail -1)
	jq -e --arg id "$id" '.stages[0].image.digest == $id and .stages[0].image.ref == "'"$P"'-img:latest"' "$rec" > /dev/null ||
		fail "record does not carry the image ID $id"
	# Rebuilding the same Dockerfile gives the same image: nothing to do.
	run dcpipe run
	[ "$status" -eq 0 ] || fail "second run failed"
	assert_contains "train is up to date, skipped"
	assert_contains "evaluate is up to date, skipped"
	# A changed Dockerfile is a new image: train reruns, and so does evaluate
	# because the model it reads changed.
	sed -i 's/v1/v2/' ctx/Dockerfile
	run dcpipe run
	[ "$status" -eq 0 ] || fail "third run failed"
	refute_contains "train is up to date"
	refute_contains "evaluate is up to date"
	run dcpipe status train
	[ "$status" -eq 0 ] || fail "status train failed"
	assert_contains "fresh"
}
