#!/usr/bin/env bats
# needs: kubernetes (tests/kubernetes-cluster, as root; under CI=true a
# cluster that does not come up fails the suite)
#
# Published ports and http health checks of the kubernetes runtime on the
# real test cluster: a service's host port answers from this host through
# the API server (its services proxy, so HTTP only) while the service runs,
# a POST body goes through and back, `ps` shows the address, `down`, the
# end of a run and the next run after a kill -9 stop the forwarder and
# free the port, a port in use is refused before anything starts, and
# healthcheck: {http: URL} is the pod's readiness probe gating dependents.

load helpers
load kube_helpers

setup() {
	kube_project kp
	PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
}

teardown() {
	local pid
	for pid in $(procs_matching "cpipe-kube-forward ${NS:-none}"); do kill -9 "$pid"; done
	kube_project_teardown
}

# A busybox httpd on 8080 serving index.html and a CGI that echoes the
# POST body, published on 127.0.0.1:$PORT, healthy once it answers.
web_spec() {
	spec << EOF
name: $P
stages:
  web:
    image: cpipe-test/busybox:latest
    service: true
    command:
      - sh
      - -c
      - |
        mkdir -p /www/cgi-bin && echo hello-from-pod > /www/index.html
        printf '#!/bin/sh\necho "Content-Type: text/plain"\necho "X-Echo: yes"\necho\nhead -c "\$\$CONTENT_LENGTH"\n' > /www/cgi-bin/echo
        chmod 755 /www/cgi-bin/echo
        exec httpd -f -p 8080 -h /www
    ports: ["${PUBLISH:-127.0.0.1:$PORT:8080}"]
    stop_grace_period: 1s
    healthcheck: {http: "http://127.0.0.1:8080/", interval: 1s, retries: 60}
${1:-}
EOF
}

# The forwarder processes of this test's namespace.
forwarders() {
	procs_matching "cpipe-kube-forward $NS"
}

# Waits up to $1 seconds for nothing to listen on 127.0.0.1:$PORT.
wait_port_free() {
	local i
	for ((i = 0; i < $1 * 4; i++)); do
		curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/" || return 0
		sleep 0.25
	done
	return 1
}

# Waits up to $1 seconds for the host port to answer with the pod's page.
wait_answer() {
	local i
	for ((i = 0; i < $1 * 2; i++)); do
		[ "$(curl -s --max-time 5 "http://127.0.0.1:$PORT/")" = hello-from-pod ] && return 0
		sleep 0.5
	done
	return 1
}

@test "a published port answers from the host through the API server; POST round-trips; ps shows it; down frees it" {
	web_spec
	run_ok up
	run curl -s -i --max-time 20 "http://127.0.0.1:$PORT/"
	[ "$status" -eq 0 ] || fail "curl exited $status"
	assert_contains "HTTP/1.1 200"
	assert_contains "hello-from-pod"
	head -c 100000 /dev/urandom | base64 > body.txt
	curl -s --max-time 20 -X POST --data-binary @body.txt -D headers.txt \
		"http://127.0.0.1:$PORT/cgi-bin/echo?x=1" > echoed.txt ||
		fail "the POST failed"
	cmp body.txt echoed.txt || fail "the POST body came back changed ($(wc -c < echoed.txt) bytes)"
	grep -qi '^X-Echo: yes' headers.txt || fail "the pod's header is lost: $(cat headers.txt)"
	run curl -s -o /dev/null -w '%{http_code}' --max-time 20 "http://127.0.0.1:$PORT/absent.html"
	[ "$output" = 404 ] || fail "a missing page gave $output, not the pod's 404"
	run_ok ps
	assert_contains "127.0.0.1:$PORT->8080"
	[ -n "$(forwarders)" ] || fail "no forwarder process"
	[ -f .cpipe/kube-forward/web.json ] || fail "no forwarder record"
	# The next up uses the running service: its own forwarder's port is
	# no port in use, and it goes on answering.
	run_ok up
	assert_contains "service web is already up"
	[ "$(curl -s --max-time 20 "http://127.0.0.1:$PORT/")" = hello-from-pod ] ||
		fail "the port stopped answering after the second up"
	[ "$(forwarders | wc -l)" -eq 1 ] || fail "forwarders: $(forwarders)"
	run_ok down
	wait_port_free 10 || fail "port $PORT still answers after down"
	[ -z "$(forwarders)" ] || fail "forwarder left after down: $(forwarders)"
	[ ! -e .cpipe/kube-forward/web.json ] || fail "the forwarder record is left"
}

@test "during cpipe run the port answers, on 127.0.0.1 by default; Ctrl-C stops the forwarder and frees the port" {
	PUBLISH="$PORT:8080" web_spec "  wait:
    image: cpipe-test/busybox:latest
    depends_on: {web: {condition: service_healthy}}
    command: sleep 300
    stop_grace_period: 1s"
	"$CPIPE_BIN" run > "$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$!
	wait_answer 90 || { kill -INT "$pid"; wait "$pid"; output=$(cat "$BATS_TEST_TMPDIR/out"); fail "the port never answered"; }
	local bound
	bound=$(ss -Hltn "sport = :$PORT" | awk '{print $4}')
	[ "$bound" = "127.0.0.1:$PORT" ] || { kill -INT "$pid"; wait "$pid"; fail "bound to $bound, not 127.0.0.1"; }
	kill -INT "$pid"
	local rc=0
	wait "$pid" || rc=$?
	output=$(cat "$BATS_TEST_TMPDIR/out")
	[ "$rc" -eq 130 ] || fail "expected exit 130, got $rc"
	wait_port_free 10 || fail "port $PORT still answers after Ctrl-C"
	[ -z "$(forwarders)" ] || fail "forwarder left after Ctrl-C: $(forwarders)"
}

@test "after a kill -9 of cpipe the next run stops its forwarder, deletes its service and takes the port" {
	web_spec "  wait:
    image: cpipe-test/busybox:latest
    depends_on: {web: {condition: service_healthy}}
    command: sleep 300"
	"$CPIPE_BIN" run > "$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$!
	wait_answer 90 || { kill -9 "$pid"; output=$(cat "$BATS_TEST_TMPDIR/out"); fail "the port never answered"; }
	kill -9 "$pid"
	wait "$pid" || true
	local old
	old=$(forwarders)
	[ -n "$old" ] || fail "the forwarder went with cpipe"
	wait_answer 10 || fail "the port stopped answering with cpipe"
	local dead
	dead=$(kubectl -n "$NS" get deployments -o name)
	[ -n "$dead" ] || fail "the killed run's service is gone already"
	# The same service again: the dead run's forwarder holds its port.
	web_spec
	run_ok up
	assert_contains "left by a cpipe that is gone"
	wait_answer 10 || fail "the new service does not answer on the port"
	[ "$(forwarders)" != "$old" ] && [ "$(forwarders | wc -l)" -eq 1 ] ||
		fail "forwarders: $(forwarders), the dead run's: $old"
	[[ "$(kubectl -n "$NS" get deployments -o name)" != *"$dead"* ]] ||
		fail "the dead run's service is left: $dead"
	run_ok down
	wait_port_free 10 || fail "port $PORT still answers after down"
	[ -z "$(forwarders)" ] || fail "forwarder left after down: $(forwarders)"
}

@test "a host port in use is refused before anything starts (exit 1)" {
	/usr/bin/python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $PORT)); s.listen(1); time.sleep(120)" &
	local holder=$!
	local i
	for ((i = 0; i < 40; i++)); do
		ss -Hltn "sport = :$PORT" | grep -q . && break
		sleep 0.1
	done
	spec << EOF
name: $P
stages:
  first: {image: cpipe-test/busybox:latest, command: echo never-printed}
  web:
    image: cpipe-test/busybox:latest
    service: true
    depends_on: [first]
    command: httpd -f -p 8080
    ports: ["127.0.0.1:$PORT:8080"]
EOF
	run cpipe up
	kill "$holder"
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	refute_contains "never-printed"
	assert_contains "port $PORT on 127.0.0.1 is already in use"
	assert_contains "cpipe.yml:"
	[ -z "$(kubectl -n "$NS" get deployments,pods -o name 2> /dev/null)" ] ||
		fail "something started: $(kubectl -n "$NS" get deployments,pods -o name)"
	[ -z "$(forwarders)" ] || fail "a forwarder started: $(forwarders)"
}

@test "healthcheck http: is the pod's readiness probe and gates a dependent; export writes it" {
	spec << EOF
name: $P
stages:
  web:
    image: cpipe-test/busybox:latest
    service: true
    command: sh -c 'mkdir -p /www && echo late-web > /www/ready && sleep 4 && exec httpd -f -p 8080 -h /www'
    ports: ["8080"]
    stop_grace_period: 1s
    healthcheck: {http: "http://localhost:8080/ready?probe=1", interval: 1s, retries: 60}
  client:
    image: cpipe-test/busybox:latest
    depends_on: {web: {condition: service_healthy}}
    command: wget -q -O - http://web:8080/ready
EOF
	run_ok run client
	assert_contains "late-web"
	run_ok export kubernetes -o k8s
	local probe
	probe=$(jq -c '.items[] | select(.kind=="Deployment") |
		.spec.template.spec.containers[0].readinessProbe.httpGet' k8s/02-web.json)
	[ "$probe" = '{"path":"/ready?probe=1","port":8080,"scheme":"HTTP"}' ] ||
		fail "exported probe: $probe"
}
