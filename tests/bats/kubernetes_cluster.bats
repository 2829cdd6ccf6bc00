#!/usr/bin/env bats
# tests/kubernetes-cluster, the real two-node Kubernetes the kubernetes
# runtime's suites run on: it comes up with two Ready nodes, kubectl works
# after eval of what it prints, jobs run on either node with the test image
# imported (no registry), a Service on one node answers a pod on the other
# by name (hostAliases: the cluster has no DNS), the API server's pods/proxy
# reaches a pod from the host, `up` is idempotent, and `down` leaves
# nothing behind. Building the binaries the first time takes minutes
# (cached under /var/cache/cpipe).

load helpers
load kube_helpers

STATE=/run/cpipe-kcluster

setup() {
	kube_ready
	NS="kc-test-$BATS_TEST_NUMBER-$RANDOM"
}

teardown() {
	[ -n "${NS:-}" ] && [ "$KREADY" = 1 ] && kubectl delete namespace "$NS" --wait=false > /dev/null 2>&1
	return 0
}

# A Job pinned to node $2 running the shell command $3, in namespace $NS.
job() {
	kubectl -n "$NS" create -f - > /dev/null << EOF
apiVersion: batch/v1
kind: Job
metadata: {name: $1}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {cpipe.test/node: $2}
      ${4:-}
      containers:
      - name: c
        image: cpipe-test/busybox:latest
        imagePullPolicy: Never
        command: [sh, -c, "$3"]
EOF
}

@test "two Ready nodes, kubectl pointed at them by what up prints" {
	[[ "$(cat "$BATS_FILE_TMPDIR/env")" == "export KUBECONFIG="* ]] || fail "up printed: $(cat "$BATS_FILE_TMPDIR/env")"
	run kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}'
	[ "$status" -eq 0 ] || fail "kubectl get nodes failed"
	[ "$output" = "kc1=True kc2=True " ] || fail "nodes: $output"
	run kubectl version -o json
	[ "$(jq -r .serverVersion.minor <<< "$output")" = 20 ] || fail "not Kubernetes 1.20: $output"
}

@test "a job runs on each node with the imported image; a failing one fails" {
	kubectl create namespace "$NS" > /dev/null
	job one kc1 'echo on $(hostname)'
	job two kc2 'echo on $(hostname)'
	job bad kc2 'exit 3'
	kubectl -n "$NS" wait --for=condition=complete job/one job/two --timeout=90s > /dev/null ||
		fail "jobs did not complete: $(kubectl -n "$NS" get pods -o wide)"
	run kubectl -n "$NS" get pods -l job-name=one -o jsonpath='{.items[0].spec.nodeName}'
	[ "$output" = kc1 ] || fail "job one ran on $output"
	run kubectl -n "$NS" get pods -l job-name=two -o jsonpath='{.items[0].spec.nodeName}'
	[ "$output" = kc2 ] || fail "job two ran on $output"
	run kubectl -n "$NS" logs job/two
	assert_contains "on two-"
	kubectl -n "$NS" wait --for=condition=failed job/bad --timeout=90s > /dev/null ||
		fail "the failing job was not reported failed"
	run kubectl -n "$NS" get pods -l job-name=bad \
		-o jsonpath='{.items[0].status.containerStatuses[0].state.terminated.exitCode}'
	[ "$output" = 3 ] || fail "exit code: $output"
}

@test "a Service on one node answers a pod on the other by name, and the host through pods/proxy" {
	kubectl create namespace "$NS" > /dev/null
	kubectl -n "$NS" create -f - > /dev/null << 'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {cpipe.test/node: kc1}
      containers:
      - name: c
        image: cpipe-test/busybox:latest
        imagePullPolicy: Never
        command: [sh, -c, "mkdir -p /www && echo answer-from-web > /www/index.html && exec httpd -f -p 8080 -h /www"]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 8080, targetPort: 8080}]
EOF
	kubectl -n "$NS" rollout status deploy/web --timeout=90s > /dev/null || fail "web not ready"
	local ip pod
	ip=$(kubectl -n "$NS" get svc web -o jsonpath='{.spec.clusterIP}')
	job client kc2 'wget -qO- http://web:8080/' "hostAliases: [{ip: \"$ip\", hostnames: [web]}]"
	kubectl -n "$NS" wait --for=condition=complete job/client --timeout=90s > /dev/null ||
		fail "client did not reach web: $(kubectl -n "$NS" logs job/client 2>&1)"
	run kubectl -n "$NS" logs job/client
	[ "$output" = answer-from-web ] || fail "client got: $output"
	pod=$(kubectl -n "$NS" get pods -l app=web -o jsonpath='{.items[0].metadata.name}')
	run kubectl get --raw "/api/v1/namespaces/$NS/pods/$pod:8080/proxy/"
	[ "$output" = answer-from-web ] || fail "pods/proxy gave: $output"
}

@test "up again is idempotent: the same cluster, the same lines" {
	local before after
	before=$(kubectl get nodes -o jsonpath='{.items[*].metadata.uid}')
	run "$CLUSTER" up
	[ "$status" -eq 0 ] || fail "second up failed"
	[ "$output" = "$(cat "$BATS_FILE_TMPDIR/env")" ] || fail "second up printed: $output"
	after=$(kubectl get nodes -o jsonpath='{.items[*].metadata.uid}')
	[ "$before" = "$after" ] || fail "up restarted the cluster"
}

@test "down stops everything up started and removes its state; down again is a no-op" {
	run "$CLUSTER" down
	[ "$status" -eq 0 ] || fail "down failed: $output"
	[ ! -e "$STATE" ] || fail "$STATE is left"
	run pgrep -f "$STATE|/var/cache/cpipe/kubernetes/"
	[ "$status" -ne 0 ] || fail "processes left: $(pgrep -af "$STATE|/var/cache/cpipe/kubernetes/")"
	! grep -q " $STATE" /proc/mounts || fail "mounts left: $(grep " $STATE" /proc/mounts)"
	run ip netns list
	refute_contains "kc1"
	refute_contains "kc2"
	! ip link show kcbr0 > /dev/null 2>&1 || fail "the bridge is left"
	! iptables -S FORWARD | grep -q kcbr0 || fail "the FORWARD rule is left"
	run "$CLUSTER" down
	[ "$status" -eq 0 ] || fail "second down failed"
	KREADY=0
}
