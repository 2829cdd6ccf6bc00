#!/usr/bin/env bats
# needs: kubernetes (tests/kubernetes-cluster, as root; under CI=true a
# cluster that does not come up fails the suite)
#
# The kubernetes runtime's streams into pods on the real test cluster:
# `cpipe exec` into a service's pod over the API server's WebSocket
# (stdout and stderr apart, the exit code, stdin; a token or a client
# certificate), a clear error for a stage that is not running, and outputs
# restored from the store into a claim through a helper pod instead of a
# rerun, and by `cpipe checkout`.

load helpers
load kube_helpers

setup() {
	kube_project kx
}

teardown() {
	kube_project_teardown
}

service_spec() {
	spec << EOF
name: $P
stages:
  make:
    image: cpipe-test/busybox:latest
    command: echo made
  web:
    image: cpipe-test/busybox:latest
    service: true
    command: sh -c 'trap "exit 0" TERM; while :; do sleep 0.2; done'
    environment: {GREETING: hello-kube}
    working_dir: /tmp
    stop_grace_period: 1s
EOF
}

@test "exec runs in the service's pod: stdout and stderr apart, the command's exit code, stdin forwarded" {
	service_spec
	run kcpipe up < /dev/null
	[ "$status" -eq 0 ] || fail "up exited $status"

	run --separate-stderr kcpipe exec web sh -c 'echo "$GREETING in $(pwd)"; echo to-stderr >&2; exit 3' < /dev/null
	[ "$status" -eq 3 ] || fail "exec exited $status, not the command's 3"
	[ "$output" = "hello-kube in /tmp" ] || fail "stdout was: $output (stderr: $stderr)"
	[ "$stderr" = "to-stderr" ] || fail "stderr was: $stderr"

	run kcpipe exec web true < /dev/null
	[ "$status" -eq 0 ] || fail "true exited $status"

	# stdin: text, then 300 KB of random bytes, round-trip unchanged.
	# (bounded: a command whose stdin never ends would wait forever)
	run timeout 60 "$CPIPE_BIN" --runtime kubernetes exec web sh -c 'cat; echo end' <<< "line-one"
	[ "$status" -eq 0 ] || fail "exec with stdin exited $status"
	[ "$output" = "$(printf 'line-one\nend')" ] || fail "stdin did not come back: $output"
	head -c 300000 /dev/urandom > "$BATS_TEST_TMPDIR/in.bin"
	run timeout 60 "$CPIPE_BIN" --runtime kubernetes exec web sha256sum < "$BATS_TEST_TMPDIR/in.bin"
	[ "$status" -eq 0 ] || fail "sha256sum exited $status"
	[ "${output%% *}" = "$(sha256sum < "$BATS_TEST_TMPDIR/in.bin" | cut -d' ' -f1)" ] ||
		fail "the bytes changed on the way: $output"
	run timeout 60 "$CPIPE_BIN" --runtime kubernetes exec web sh -c 'wc -c' < "$BATS_TEST_TMPDIR/in.bin"
	[ "$(echo "$output" | tr -d ' ')" = 300000 ] || fail "wc -c said $output"

	run kcpipe exec web no-such-command < /dev/null
	[ "$status" -eq 127 ] || [ "$status" -eq 126 ] || fail "an unknown command exited $status"
	run_ok down
}

@test "exec authenticates with a kubeconfig's client certificate and key as with a token" {
	# A user of the test cluster's CA, in a kubeconfig without a token.
	local pki=${KCLUSTER_DIR:-/run/cpipe-kcluster}/pki d=$BATS_TEST_TMPDIR/cert
	mkdir -p "$d"
	openssl req -new -newkey rsa:2048 -nodes -keyout "$d/u.key" -out "$d/u.csr" \
		-subj "/O=system:masters/CN=cpipe-exec-test" 2> /dev/null
	openssl x509 -req -in "$d/u.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
		-CAcreateserial -CAserial "$d/ca.srl" -days 1 -out "$d/u.crt" 2> /dev/null
	local server
	server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
	(
		export KUBECONFIG=$d/kubeconfig
		kubectl config set-cluster c --server="$server" --certificate-authority="$pki/ca.crt" --embed-certs
		kubectl config set-credentials u --client-certificate="$d/u.crt" --client-key="$d/u.key" --embed-certs
		kubectl config set-context t --cluster=c --user=u
		kubectl config use-context t
	) > /dev/null
	grep -q token "$d/kubeconfig" && fail "the kubeconfig has a token"
	service_spec
	run kcpipe up < /dev/null
	[ "$status" -eq 0 ] || fail "up exited $status"
	KUBECONFIG=$d/kubeconfig run kcpipe exec web sh -c 'echo via-cert; exit 5' < /dev/null
	[ "$status" -eq 5 ] || fail "exec with the certificate exited $status"
	[ "$output" = "via-cert" ] || fail "exec with the certificate said: $output"
	run_ok down
}

@test "logs shows a service pod's lines and logs -f follows new ones as they come" {
	spec << EOF
name: $P
stages:
  ticker:
    image: cpipe-test/busybox:latest
    service: true
    command: ["sh", "-c", "trap 'exit 0' TERM; i=0; while :; do i=\$\$((i+1)); echo tick-\$\$i; sleep 0.3; done"]
    stop_grace_period: 1s
EOF
	run kcpipe up < /dev/null
	[ "$status" -eq 0 ] || fail "up exited $status"
	local i
	for i in $(seq 1 40); do
		run kcpipe logs ticker
		[[ "$output" == *"tick-3"* ]] && break
		sleep 0.25
	done
	assert_contains "ticker | tick-1"
	assert_contains "ticker | tick-3"
	# Follow for a while: lines written after it started arrive.
	local before after
	before=$(kcpipe logs ticker | grep -c 'tick-')
	timeout 4 "$CPIPE_BIN" --runtime kubernetes logs -f ticker > "$BATS_TEST_TMPDIR/f.log" 2>&1 || true
	after=$(grep -c 'ticker | tick-' "$BATS_TEST_TMPDIR/f.log")
	[ "$after" -ge $((before + 5)) ] ||
		fail "logs -f gave $after lines, $before were there before: $(tail -3 "$BATS_TEST_TMPDIR/f.log")"
	grep -q "ticker | tick-$((before + 5))\$" "$BATS_TEST_TMPDIR/f.log" ||
		fail "logs -f did not show tick-$((before + 5)): $(tail -3 "$BATS_TEST_TMPDIR/f.log")"
	run_ok down
	wait_no_objects 30 || fail "left behind: $(project_objects)"
}

@test "exec into a stage that is not running is a clear error; kill ends the service" {
	service_spec
	run kcpipe exec web true < /dev/null
	[ "$status" -ne 0 ] || fail "exec before up succeeded"
	assert_contains "service web is not up"
	run kcpipe up < /dev/null
	[ "$status" -eq 0 ] || fail "up exited $status"
	run kcpipe exec make true < /dev/null
	[ "$status" -ne 0 ] || fail "exec into a job succeeded"
	assert_contains "make is not up"

	run_ok kill web
	local i
	for ((i = 0; i < 120; i++)); do
		[ -z "$(kubectl -n "$NS" get pods -l cpipe.dev/stage=web -o name 2> /dev/null)" ] && break
		sleep 0.25
	done
	run kcpipe exec web true < /dev/null
	[ "$status" -eq 2 ] || fail "exec into a killed service exited $status, not 2"
	assert_contains "service web is not running"
	assert_contains "no running pod"
	run_ok down
}

# The host directory of the hostPath PersistentVolume bound to the
# project's claim of volume $1.
claim_dir() {
	local pv
	pv=$(kubectl -n "$NS" get pvc "$P-$1" -o jsonpath='{.spec.volumeName}')
	kubectl get pv "$pv" -o jsonpath='{.spec.hostPath.path}'
}

# train writes a model directory (a file, a subdirectory, a link, modes)
# into volume data; evaluate reads it and writes data:/eval.txt. A test
# makes evaluate run again (a new key) with `next_round`.
next_round() {
	sed -i 's/round-1/round-2/' "$PROJ/cpipe.yml"
}

restore_spec() {
	spec << EOF
name: $P
volumes:
  data: {}
stages:
  train:
    image: cpipe-test/busybox:latest
    command: >-
      sh -c 'mkdir -p /vol/model/sub && printf "weights-1\n" > /vol/model/w.bin &&
      printf "cfg" > /vol/model/sub/c.txt && ln -sf w.bin /vol/model/latest &&
      chmod 750 /vol/model/sub && chmod 640 /vol/model/w.bin && echo trained'
    volumes: [data:/vol]
    outputs: [data:/model]
  evaluate:
    image: cpipe-test/busybox:latest
    command: >-
      sh -c 'echo round-1; cat /vol/model/latest; stat -c "%a %n" /vol/model/sub /vol/model/w.bin;
      readlink /vol/model/latest; cat /vol/model/sub/c.txt > /vol/eval.txt'
    volumes: [data:/vol]
    inputs: [data:/model]
    outputs: [data:/eval.txt]
EOF
}

@test "outputs in the store are restored into the claim instead of rerun, with the same digests" {
	restore_spec
	run_ok run
	assert_contains "trained"
	local before first_run
	before=$(jq -S '.stages | map_values(.outputs)' cpipe.lock)
	echo "$before" | grep -q 'sha256:' || fail "no digests in the lock: $before"
	first_run=$(basename "$(find .cpipe -path '*/runs/*.json')" .json)

	# The claim loses the outputs (as a fresh claim has none).
	local dir
	dir=$(claim_dir data)
	[ -n "$dir" ] && [ -f "$dir/model/w.bin" ] || fail "no model in the claim's directory $dir"
	rm -rf "$dir/model" "$dir/eval.txt"
	next_round

	run_ok run
	[[ "$output" != *"trained"* ]] || fail "train ran again"
	assert_contains "train restored from run"
	assert_contains "weights-1"
	assert_contains "750 /vol/model/sub"
	assert_contains "640 /vol/model/w.bin"
	assert_contains "evaluate | w.bin"
	assert_contains "round-2"
	local after
	after=$(jq -S '.stages | map_values(.outputs)' cpipe.lock)
	[ "$before" = "$after" ] || fail "digests differ: before $before after $after"
	local rec
	rec=$(ls -t $(find .cpipe -path '*/runs/*.json') | head -1)
	jq -e '.stages[] | select(.name == "train") | .status == "restored"' "$rec" > /dev/null ||
		fail "the run record does not say train was restored: $(jq -c '.stages' "$rec")"
	# Nothing of the restore is left: no helper pod, no temporary in the claim.
	wait_no_helpers || fail "helper pods left: $(kubectl -n "$NS" get pods -o name)"
	[ -z "$(find "$dir" -name '.cpipe-restore.*')" ] || fail "a restore temporary is left in the claim"

	# checkout puts the first run's outputs back into the claim.
	printf 'changed' > "$dir/model/w.bin"
	rm "$dir/model/latest"
	run_ok checkout "$first_run"
	[ "$(cat "$dir/model/w.bin")" = "weights-1" ] || fail "checkout left w.bin: $(cat "$dir/model/w.bin")"
	[ "$(readlink "$dir/model/latest")" = w.bin ] || fail "checkout did not put the link back"
}

# Waits up to 30 s for the project's helper pods to be gone.
wait_no_helpers() {
	local i
	for ((i = 0; i < 120; i++)); do
		[ -z "$(kubectl -n "$NS" get pods -l cpipe.dev/helper -o name 2> /dev/null)" ] && return 0
		sleep 0.25
	done
	return 1
}

@test "a second project sharing the store gets the outputs restored into its new claim, read by the next stage" {
	export CPIPE_STORE="$BATS_TEST_TMPDIR/store"
	restore_spec
	run_ok run
	assert_contains "trained"
	local first
	first=$(jq -S '.stages | map_values(.outputs)' cpipe.lock)

	local P1=$P NS1=$NS
	mkdir -p "$BATS_TEST_TMPDIR/second" && cd "$BATS_TEST_TMPDIR/second"
	P="$P1-b" NS="cpipe-$P1-b" PROJ=$PWD
	restore_spec
	next_round
	run kcpipe run
	kubectl delete namespace "$NS1" --wait=false > /dev/null 2>&1
	[ "$status" -eq 0 ] || fail "the second project's run exited $status"
	[[ "$output" != *"trained"* ]] || fail "train ran again in the second project"
	assert_contains "train restored from run"
	assert_contains "weights-1"
	[ "$(jq -S '.stages | map_values(.outputs)' cpipe.lock)" = "$first" ] ||
		fail "digests differ: $(cat cpipe.lock)"
	[ -f "$(claim_dir data)/model/sub/c.txt" ] || fail "the new claim has no restored model"
}
