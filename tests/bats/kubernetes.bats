#!/usr/bin/env bats
# needs: kubernetes (tests/kubernetes-cluster, as root; under CI=true a
# cluster that does not come up fails the suite)
#
# The kubernetes runtime on the real two-node test cluster: Jobs sharing a
# claim across the nodes, a health-gated Service reached by stage name,
# failures in words, Ctrl-C and kill -9 cleanup by label, skipping on the
# second run, and output digests equal to the local runtime's.

load helpers
load kube_helpers

setup() {
	kube_project kt
}

teardown() {
	kube_project_teardown
}

# Waits up to 60 s for $1 pods of the project to be Running.
wait_running() {
	local i n=0
	for ((i = 0; i < 240; i++)); do
		n=$(kubectl -n "$NS" get pods -l "cpipe.dev/project=$P" \
			--field-selector=status.phase=Running -o name 2> /dev/null | wc -l)
		[ "$n" -ge "$1" ] && return 0
		sleep 0.25
	done
	return 1
}

# The fixture both runtimes run: a model directory (files, a subdirectory,
# a symlink, explicit modes) on node kc1, read back on node kc2.
fixture() {
	local runtime=$1
	spec << EOF
name: $P
runtime: $runtime
volumes:
  data: {}
stages:
  train:
    image: cpipe-test/busybox:latest
    x-cpipe: {node_selector: {cpipe.test/node: kc1}}
    command: >-
      sh -c 'mkdir -p /vol/model/sub && printf "weights-1\n" > /vol/model/w.bin &&
      printf "cfg" > /vol/model/sub/c.txt &&
      ln -sf w.bin /vol/model/latest && chmod 755 /vol/model /vol/model/sub &&
      chmod 644 /vol/model/w.bin /vol/model/sub/c.txt && echo trained'
    volumes: [data:/vol]
    outputs: [data:/model]
  evaluate:
    image: cpipe-test/busybox:latest
    x-cpipe: {node_selector: {cpipe.test/node: kc2}}
    command: >-
      sh -c 'cat /vol/model/latest; printf "{\"acc\": 0.9}" > /vol/metrics.json;
      chmod 644 /vol/metrics.json'
    volumes: [data:/vol]
    inputs: [data:/model]
    outputs: [data:/metrics.json]
EOF
}

@test "jobs on the two nodes share a claim; the second run skips; digests equal the local runtime's" {
	fixture kubernetes
	run_ok run
	assert_contains "trained"
	assert_contains "weights-1"
	# Each ran on the node its x-cpipe node_selector chose (pods are
	# deleted with their Job: the run record keeps nothing of nodes, so
	# ask the cluster's events, which outlive the pods).
	local nodes
	nodes=$(kubectl -n "$NS" get events -o json |
		jq -r '.items[] | select(.reason=="Scheduled") | .message' | sort)
	[[ "$nodes" == *"-train-"*"to kc1"* ]] || fail "train not on kc1: $nodes"
	[[ "$nodes" == *"-evaluate-"*"to kc2"* ]] || fail "evaluate not on kc2: $nodes"
	[ -z "$(project_objects)" ] || fail "left behind: $(project_objects)"
	kubectl -n "$NS" get pvc -l "cpipe.dev/project=$P" -o name | grep -q . ||
		fail "the volume's claim is gone"
	local kdigests
	kdigests=$(jq -S '.stages | map_values(.outputs)' cpipe.lock)

	run_ok run
	[[ "$output" != *"trained"* ]] || fail "train ran again"
	assert_contains "train is up to date, skipped"

	# The same fixture on the local runtime, in another directory.
	mkdir -p "$BATS_TEST_TMPDIR/local" && cd "$BATS_TEST_TMPDIR/local"
	PROJ=$PWD fixture local
	CPIPE_RUNTIME=local run_ok run
	local ldigests
	ldigests=$(jq -S '.stages | map_values(.outputs)' cpipe.lock)
	echo "$kdigests" | grep -q 'sha256:' || fail "no digests in the lock: $kdigests"
	[ "$kdigests" = "$ldigests" ] || fail "digests differ: kubernetes $kdigests local $ldigests"
}

@test "a build: stage is keyed on its context: editing a file it copies makes it stale" {
	# The nodes know images by name only: the key takes what the
	# Dockerfile copies from the context, as on the local runtime.
	mkdir -p ctx
	printf 'FROM cpipe-test/busybox:latest\nCOPY run.sh /run.sh\n' > ctx/Dockerfile
	printf 'echo one\n' > ctx/run.sh
	spec << EOF
name: $P
volumes: {v: {}}
stages:
  c:
    build: ctx
    image: cpipe-test/busybox:latest
    command: "sh -c 'echo built-ran; echo kept > /v/c'"
    volumes: [v:/v]
    outputs: ["v:/c"]
EOF
	run_ok run
	assert_contains "built-ran"
	run_ok status --check
	# The record names the image the pod ran by content, as the nodes'
	# Docker (which loaded this host's image) knows it.
	local rec ran id
	rec=$(ls -t .cpipe/runs/*.json | head -1)
	ran=$(jq -r '.stages[] | select(.name == "c") | .image.ran' "$rec")
	id=$(docker image inspect -f '{{.Id}}' cpipe-test/busybox:latest)
	[ "$ran" = "docker://$id" ] || fail "the record's image.ran is $ran, not docker://$id"
	printf 'echo two\n' > ctx/run.sh
	run kcpipe status --check
	[ "$status" -ne 0 ] || fail "fresh after its context changed: $output"
	assert_contains "input ./ctx/run.sh changed"
	run_ok run
	assert_contains "built-ran"
	# The cluster builds nothing: the run says the image must hold it.
	assert_contains "stage c: its build context changed (./ctx/run.sh)"
	run_ok status --check
	run_ok run
	refute_contains "build context changed"
	assert_contains "c is up to date, skipped"
}

@test "observed outputs: a job without outputs: records what it wrote in the claim, and skips after" {
	cat > cpipe.yml <<EOF
name: $P
volumes:
  v: {}
stages:
  write:
    image: cpipe-test/busybox:latest
    command: sh -c 'mkdir -p /v/m && echo hello > /v/m/out.txt && echo wrote'
    volumes: [v:/v]
  read:
    image: cpipe-test/busybox:latest
    command: sh -c 'cat /v/m/out.txt && wc -c < /v/m/out.txt > /v/count.txt'
    volumes: [v:/v]
    depends_on: [write]
EOF
	run_ok run
	assert_contains "| hello"
	# What each wrote is its output, with the digest of its content.
	[ "$(jq -r '.stages.write.outputs | keys | join(",")' cpipe.lock)" = "v:/m" ] ||
		fail "write's observed outputs: $(jq -c .stages.write.outputs cpipe.lock)"
	[ "$(jq -r '.stages.read.outputs | keys | join(",")' cpipe.lock)" = "v:/count.txt" ] ||
		fail "read's observed outputs: $(jq -c .stages.read.outputs cpipe.lock)"
	run_ok run
	assert_contains "write is up to date, skipped"
	assert_contains "read is up to date, skipped"
	[[ "$output" != *"wrote"* ]] || fail "write ran again"
	# The same digests as the local runtime observes for the same spec.
	local kdigests ldigests
	kdigests=$(jq -S '.stages | map_values(.outputs)' cpipe.lock)
	mkdir -p "$BATS_TEST_TMPDIR/local" && cp cpipe.yml "$BATS_TEST_TMPDIR/local/"
	cd "$BATS_TEST_TMPDIR/local"
	CPIPE_RUNTIME=local run_ok run
	ldigests=$(jq -S '.stages | map_values(.outputs)' cpipe.lock)
	echo "$kdigests" | grep -q 'sha256:' || fail "no digests in the lock: $kdigests"
	[ "$kdigests" = "$ldigests" ] || fail "digests differ: kubernetes $kdigests local $ldigests"
}

@test "a health-gated service is reached by its stage name from a job; nothing is left after" {
	spec << EOF
name: $P
stages:
  web:
    image: cpipe-test/busybox:latest
    service: true
    command: sh -c 'mkdir -p /www && sleep 2 && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www'
    ports: ["8080"]
    stop_grace_period: 1s
    healthcheck:
      test: [CMD, wget, -q, -O, /dev/null, "http://127.0.0.1:8080/"]
      interval: 1s
      retries: 60
  client:
    image: cpipe-test/busybox:latest
    x-cpipe: {node_selector: {cpipe.test/node: kc2}}
    depends_on: {web: {condition: service_healthy}}
    command: wget -q -O - http://web:8080/
EOF
	run_ok run client
	assert_contains "hello-from-web"
	# The Deployment's pod goes with it through the garbage collector.
	wait_no_objects 60 || fail "left behind: $(project_objects)"
}

@test "a failing job gives its exit code; a pod that cannot run says why in words" {
	spec << EOF
name: $P
stages:
  bad: {image: cpipe-test/busybox:latest, command: sh -c 'echo boom; exit 7'}
  after: {image: cpipe-test/busybox:latest, command: echo never-printed, depends_on: [bad]}
EOF
	run kcpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "boom"
	assert_contains 'stage "bad" failed with exit code 7'
	refute_contains "never-printed"
	wait_no_objects 60 || fail "left behind: $(project_objects)"

	spec << EOF
name: $P
stages:
  nowhere:
    image: cpipe-test/busybox:latest
    x-cpipe: {node_selector: {cpipe.test/node: kc9}}
    command: echo never-printed
EOF
	CPIPE_KUBE_SCHEDULE_TIMEOUT=3 run kcpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "no node can run the pod (Unschedulable)"
	refute_contains "never-printed"

	spec << EOF
name: $P
stages:
  noimage: {image: cpipe-test/absent:1, command: echo never-printed}
EOF
	run kcpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "the image cpipe-test/absent:1 could not be pulled by the node"
	wait_no_objects 60 || fail "left behind: $(project_objects)"
}

@test "what the cluster cannot do is refused before anything runs (exit 2)" {
	mkdir -p ctx && printf 'FROM scratch\n' > ctx/Dockerfile
	spec << EOF
name: $P
stages:
  first: {image: cpipe-test/busybox:latest, command: echo never-printed}
  built: {build: ctx, image: cpipe-test/notthere:1, command: "true", depends_on: [first]}
EOF
	run kcpipe run
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains 'stage "built" has build:, and the kubernetes runtime cannot build images'
	refute_contains "never-printed"

	printf 'x' > data.txt
	spec << EOF
name: $P
stages:
  w: {image: cpipe-test/busybox:latest, command: "true", volumes: ["./data.txt:/d.txt"]}
EOF
	run kcpipe run
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains "cpipe.yml:3:"
	assert_contains "a writable bind mount"
	[ -z "$(project_objects)" ] || fail "left behind: $(project_objects)"
}

@test "read-only project files reach the pod as a ConfigMap" {
	mkdir -p conf && printf 'lr=0.1\n' > conf/train.cfg && printf 'v2\n' > version.txt
	spec << EOF
name: $P
stages:
  show:
    image: cpipe-test/busybox:latest
    command: sh -c 'cat /etc/app/train.cfg /version.txt'
    volumes: ["./conf:/etc/app:ro", "./version.txt:/version.txt:ro"]
EOF
	run_ok run
	assert_contains "lr=0.1"
	assert_contains "v2"
	[ -z "$(project_objects)" ] || fail "left behind: $(project_objects)"
}

@test "a claim the cluster cannot bind is a clear error naming class and size" {
	spec << EOF
name: $P
volumes:
  big: {driver_opts: {storage_class: no-such-class, size: 5Gi}}
stages:
  s: {image: cpipe-test/busybox:latest, command: echo never-printed, volumes: [big:/big]}
EOF
	CPIPE_KUBE_BIND_TIMEOUT=3 run kcpipe run
	[ "$status" -ne 0 ] || fail "expected a failure"
	assert_contains 'volume "big": the cluster bound no PersistentVolume'
	assert_contains "5Gi, ReadWriteMany, storage class no-such-class"
	refute_contains "never-printed"
}

@test "Ctrl-C stops the run's pods and deletes everything it labelled; exit 130" {
	spec << EOF
name: $P
stages:
  slow: {image: cpipe-test/busybox:latest, command: sleep 300, stop_grace_period: 1s}
  slow2: {image: cpipe-test/busybox:latest, command: sleep 300, stop_grace_period: 1s}
  later: {image: cpipe-test/busybox:latest, command: echo never-printed, depends_on: [slow, slow2]}
EOF
	"$CPIPE_BIN" --runtime kubernetes run -j 2 > "$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$!
	wait_running 2 || { kill -INT "$pid"; wait "$pid"; fail "the two pods never ran"; }
	kill -INT "$pid"
	local rc=0
	wait "$pid" || rc=$?
	output=$(cat "$BATS_TEST_TMPDIR/out")
	[ "$rc" -eq 130 ] || fail "expected exit 130, got $rc"
	refute_contains "never-printed"
	wait_no_objects 60 || fail "left behind: $(project_objects)"
}

@test "after a kill -9 the next run deletes what the dead one left" {
	spec << EOF
name: $P
stages:
  slow: {image: cpipe-test/busybox:latest, command: sleep 300}
EOF
	"$CPIPE_BIN" --runtime kubernetes run > "$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$!
	wait_running 1 || { kill -9 "$pid"; fail "the pod never ran"; }
	kill -9 "$pid"
	wait "$pid" || true
	[ -n "$(kubectl -n "$NS" get jobs -l "cpipe.dev/project=$P" -o name)" ] ||
		fail "the killed run's Job is gone already"
	spec << EOF
name: $P
stages:
  quick: {image: cpipe-test/busybox:latest, command: echo quick-ran}
EOF
	run_ok run
	assert_contains "quick-ran"
	assert_contains "left by a cpipe that is gone"
	wait_no_objects 60 || fail "left behind: $(project_objects)"
}

@test "down -v deletes the project's claims; --context picks a kubeconfig context" {
	spec << EOF
name: $P
volumes: {data: {}}
stages:
  w: {image: cpipe-test/busybox:latest, command: sh -c 'echo x > /d/x', volumes: [data:/d]}
EOF
	run kcpipe --context no-such-context run
	[ "$status" -eq 3 ] || fail "expected exit 3, got $status"
	assert_contains 'no context "no-such-context"'
	run_ok run
	kubectl -n "$NS" get pvc -o name | grep -q . || fail "no claim made"
	run_ok volume ls
	assert_contains "data"
	run_ok down -v
	local i
	for ((i = 0; i < 40; i++)); do
		[ -z "$(kubectl -n "$NS" get pvc -o name 2> /dev/null)" ] && break
		sleep 0.25
	done
	[ -z "$(kubectl -n "$NS" get pvc -o name 2> /dev/null)" ] || fail "claims left: $(kubectl -n "$NS" get pvc -o name)"
}

@test "export kubernetes writes manifests that kubectl applies and the pipeline runs in order" {
	spec << EOF2
name: $P
volumes: {data: {}}
stages:
  web:
    image: cpipe-test/busybox:latest
    service: true
    command: sh -c 'mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www'
    ports: ["8080"]
    healthcheck: {test: [CMD, wget, -q, -O, /dev/null, "http://127.0.0.1:8080/"], interval: 1s}
  train:
    image: cpipe-test/busybox:latest
    x-cpipe: {node_selector: {cpipe.test/node: kc1}}
    command: sh -c 'sleep 1; echo model-7 > /vol/model'
    volumes: [data:/vol]
    outputs: [data:/model]
  evaluate:
    image: cpipe-test/busybox:latest
    x-cpipe: {node_selector: {cpipe.test/node: kc2}}
    depends_on: {web: {condition: service_healthy}}
    command: sh -c 'echo "read \$\$(cat /vol/model) and \$\$(wget -q -O - http://web:8080/)"'
    volumes: [data:/vol]
    inputs: [data:/model]
EOF2
	run_ok export kubernetes -o k8s
	assert_contains "k8s/apply.sh"
	[ -x k8s/apply.sh ] || fail "apply.sh is not executable"
	run k8s/apply.sh
	[ "$status" -eq 0 ] || fail "apply.sh exited $status"
	assert_contains "read model-7 and served"
}
