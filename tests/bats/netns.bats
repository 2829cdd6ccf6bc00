#!/usr/bin/env bats
# The local runtime's project network: stages share a private network
# namespace, published ports are forwarded into it by pasta from their host
# address, nothing else is reachable from the host, and the namespace goes
# away with the last stage (or on the next run after a kill -9).

load helpers

setup() {
	PROJ="$BATS_TEST_TMPDIR/proj"
	mkdir -p "$PROJ/www"
	cd "$PROJ" || return 1
	echo "from-inside" > www/index.html
}

teardown() {
	cd "$PROJ" 2>/dev/null && "$CPIPE_BIN" down > /dev/null 2>&1
	[ -z "${TUN_MODE:-}" ] || chmod "$TUN_MODE" /dev/net/tun
	return 0
}

# The pasta and holder pids of the project's network, from its record.
net_pids() {
	jq -r '.pasta, .holder' "${1:-$PROJ}/.cpipe/run/netns.json"
}

# Nothing of the project's network is left: no record, no pasta, no holder.
network_gone() {
	local dir=${1:-$PROJ} pid
	[ ! -e "$dir/.cpipe/run/netns.json" ] || { echo "record left"; return 1; }
	[ -z "$(procs_matching "$dir/.cpipe/run/pasta")" ] || { echo "pasta left"; return 1; }
	for pid in ${2:-}; do
		if kill -0 "$pid" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$pid/stat")" != Z ]; then
			echo "process $pid left"
			return 1
		fi
	done
}

# A service listening on every address inside on 8000 (published on host
# port $1) and on 8001 (not published).
two_port_spec() {
	spec <<EOF
stages:
  web:
    service: true
    container_name: web-box
    command: sh -c 'busybox httpd -p 8001 -h /www && exec busybox httpd -f -p 8000 -h /www'
    volumes: ["./www:/www:ro"]
    ports: ["127.0.0.1:$1:8000"]
    healthcheck: {http: "http://localhost:8000/index.html", interval: 100ms, retries: 100}
  client:
    command: sh -c 'busybox wget -q -O - http://web:8001/index.html && busybox wget -q -O - http://web-box:8000/index.html'
    depends_on: {web: {condition: service_healthy}}
EOF
}

# Starts `cpipe run` in the background ($pid) on a service publishing
# $hport and a job `sleep $1`, and waits until the job runs.
start_run_with_job() {
	spec <<EOF
stages:
  web:
    service: true
    command: busybox httpd -f -p 8000 -h /www
    volumes: ["./www:/www:ro"]
    ports: ["127.0.0.1:$hport:8000"]
  job:
    command: sleep $1
    depends_on: {web: {condition: service_started}}
EOF
	"$CPIPE_BIN" run > out.log 2>&1 &
	pid=$!
	for i in $(seq 100); do [ -n "$(procs_matching "sleep $1")" ] && break; sleep 0.1; done
	[ -n "$(procs_matching "sleep $1")" ] || { output=$(cat out.log); fail "did not start"; }
}

@test "a published port is reached on its host address and port, an unpublished one is not" {
	hport=$(free_port)
	two_port_spec "$hport"
	run cpipe up web
	[ "$status" -eq 0 ] || fail "up failed"
	[ "$(curl -fsS "http://127.0.0.1:$hport/index.html")" = from-inside ] || fail "published port not forwarded"
	port_closed 8000 || fail "container port 8000 is open on the host"
	port_closed 8001 || fail "unpublished port 8001 is open on the host"
	run cpipe ps
	assert_contains "127.0.0.1:$hport->8000/tcp"
	pids=$(net_pids)
	run cpipe down
	[ "$status" -eq 0 ] || fail "down failed"
	port_closed "$hport" || fail "host port still forwarded after down"
	network_gone "$PROJ" "$pids" || fail "network left after down"
}

@test "a job reaches a service by stage name and container_name, unpublished ports included" {
	two_port_spec "$(free_port)"
	run cpipe run client
	[ "$status" -eq 0 ] || fail "run failed"
	[ "$(grep -c 'client | from-inside' <<< "$output")" -eq 2 ] || fail "client did not reach web"
	network_gone || fail "network left after the run"
}

@test "two projects both listen on 8000 inside at the same time" {
	p1=$(free_port)
	p2=$(free_port)
	for n in 1 2; do
		mkdir -p "$PROJ/p$n/www"
		echo "project-$n" > "$PROJ/p$n/www/index.html"
		port=$([ "$n" = 1 ] && echo "$p1" || echo "$p2")
		cat > "$PROJ/p$n/cpipe.yml" <<EOF
stages:
  web:
    service: true
    command: busybox httpd -f -p 8000 -h /www
    volumes: ["./www:/www:ro"]
    ports: ["127.0.0.1:$port:8000"]
    healthcheck: {http: "http://127.0.0.1:8000/index.html", interval: 100ms, retries: 100}
EOF
		run "$CPIPE_BIN" -C "$PROJ/p$n" up
		[ "$status" -eq 0 ] || fail "up of project $n failed"
	done
	[ "$(curl -fsS "http://127.0.0.1:$p1/index.html")" = project-1 ] || fail "project 1"
	[ "$(curl -fsS "http://127.0.0.1:$p2/index.html")" = project-2 ] || fail "project 2"
	"$CPIPE_BIN" -C "$PROJ/p1" down > /dev/null
	"$CPIPE_BIN" -C "$PROJ/p2" down > /dev/null
	network_gone "$PROJ/p1" && network_gone "$PROJ/p2" || fail "network left"
}

@test "a stage reaches a server on the host through the gateway address" {
	port=$(free_port)
	mkdir -p hostwww && echo "from-the-host" > hostwww/index.html
	busybox httpd -f -p "127.0.0.1:$port" -h "$PROJ/hostwww" &
	server=$!
	for i in $(seq 50); do port_closed "$port" || break; sleep 0.1; done
	# pasta maps connections to the namespace's default gateway to the host.
	# Only ever inside a namespace of its own: on the host's network the
	# gateway is a real machine, never to be a target.
	cat > gw.sh <<'EOF'
port=$1
[ "$(readlink /proc/self/ns/net)" != "$2" ] || { echo "on the host's network"; exit 1; }
set -- $(awk '$2 == "00000000" { print $3; exit }' /proc/net/route | sed 's/../& /g')
gw=$(printf '%d.%d.%d.%d' "0x$4" "0x$3" "0x$2" "0x$1")
echo "gateway $gw"
busybox wget -q -O - "http://$gw:$port/index.html"
EOF
	spec <<EOF
stages:
  web:
    service: true
    command: sleep 300
  fetch:
    command: sh ./gw.sh $port $(readlink /proc/self/ns/net)
EOF
	run cpipe run fetch
	kill "$server"
	[ "$status" -eq 0 ] || fail "fetch failed"
	assert_contains "fetch | from-the-host"
}

@test "after a kill -9 of cpipe the next down removes the network" {
	hport=$(free_port)
	start_run_with_job 348 || return 1
	pids=$(net_pids)
	kill -9 "$pid"
	wait "$pid" || true
	run cpipe down
	network_gone "$PROJ" "$pids" || fail "network left after kill -9 and down"
	port_closed "$hport" || fail "host port still forwarded"
	# And the next run sets up a fresh network.
	run cpipe run --keep-serving --no-deps web
	[ "$status" -eq 0 ] || fail "next run failed"
	[ "$(curl -fsS "http://127.0.0.1:$hport/index.html")" = from-inside ] || fail "not forwarded"
}

@test "a CMD health check runs in the service's network" {
	spec <<'EOF'
stages:
  web:
    service: true
    command: busybox httpd -f -p 127.0.0.1:8000 -h /www
    volumes: ["./www:/www:ro"]
    healthcheck:
      test: ["CMD", "busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/index.html"]
      interval: 100ms
      retries: 50
EOF
	run cpipe up
	[ "$status" -eq 0 ] || fail "the health check did not reach the service"
	assert_contains "web is healthy"
	port_closed 8000 || fail "8000 open on the host"
}

@test "network_mode: host keeps a stage on the host's network" {
	port=$(free_port)
	spec <<EOF
stages:
  web:
    service: true
    network_mode: host
    command: busybox httpd -f -p 127.0.0.1:$port -h /www
    volumes: ["./www:/www:ro"]
EOF
	run cpipe up
	[ "$status" -eq 0 ] || fail "up failed"
	for i in $(seq 50); do port_closed "$port" || break; sleep 0.1; done
	[ "$(curl -fsS "http://127.0.0.1:$port/index.html")" = from-inside ] || fail "not on the host"
	[ ! -e .cpipe/run/netns.json ] || fail "a network was made for a host-network stage"
}

@test "network_mode: none gives a job only its own loopback" {
	port=$(free_port)
	python3 -m http.server -b 127.0.0.1 "$port" > /dev/null 2>&1 &
	local srv=$!
	for i in $(seq 50); do port_closed "$port" || break; sleep 0.1; done
	spec <<EOF
stages:
  isolated:
    network_mode: none
    command: sh -c 'ip -o link | cut -d" " -f2; if wget -q -T 2 -O /dev/null http://127.0.0.1:$port/; then echo reached-host; else echo no-host; fi'
  open:
    command: sh -c 'if wget -q -T 2 -O /dev/null http://127.0.0.1:$port/; then echo reached-host; else echo no-host; fi'
EOF
	run cpipe run
	kill "$srv"
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "isolated | lo:"
	assert_contains "isolated | no-host"
	refute_contains "isolated | eth"
	assert_contains "open     | reached-host"
	# Other modes are compose's too, but not cpipe's: one warning, file:line:col.
	spec <<'EOF'
stages:
  a: {command: "true", network_mode: bridge}
EOF
	run cpipe config
	[ "$status" -eq 0 ] || fail "config failed"
	assert_contains 'cpipe.yml:2:38: stage "a": network_mode: bridge: cpipe ignores it'
}

@test "without pasta the local runtime says which package to install" {
	mkdir -p "$BATS_TEST_TMPDIR/bin"
	spec <<'EOF'
stages:
  web:
    service: true
    command: sleep 300
    ports: ["127.0.0.1:18999:8000"]
EOF
	run env PATH="$BATS_TEST_TMPDIR/bin" "$CPIPE_BIN" up
	[ "$status" -eq 3 ] || fail "expected exit 3, got $status"
	assert_contains "apt-get install passt"
	assert_contains "network_mode: host"
}

@test "an unprivileged user's services get the project network too" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to switch to nobody"
	# pasta needs /dev/net/tun as Debian installs it (0666); containers may not.
	TUN_MODE=$(stat -c %a /dev/net/tun)
	chmod 666 /dev/net/tun
	PROJ=$(mktemp -d /tmp/cpipe-nobody-net.XXXXXX)
	chmod 755 "$PROJ"
	cd "$PROJ" || fail "cd"
	mkdir -p www && echo "from-inside" > www/index.html
	hport=$(free_port)
	two_port_spec "$hport"
	chown -R 65534:65534 "$PROJ"
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$PROJ" "$CPIPE_BIN" "$@"; }
	run as_nobody up web
	[ "$status" -eq 0 ] || fail "unprivileged up failed"
	[ "$(curl -fsS "http://127.0.0.1:$hport/index.html")" = from-inside ] || fail "not forwarded"
	port_closed 8001 || fail "unpublished port open on the host"
	run as_nobody run client
	[ "$status" -eq 0 ] || fail "client failed"
	assert_contains "client | from-inside"
	pids=$(net_pids)
	run as_nobody down
	network_gone "$PROJ" "$pids" || fail "network left"
	cd / && rm -rf "$PROJ"
}

@test "ps probes a healthy service again: a hung server shows as unhealthy" {
	hport=$(free_port)
	spec <<EOF2
stages:
  web:
    service: true
    command: busybox httpd -f -p 8000 -h /www
    volumes: ["./www:/www:ro"]
    ports: ["127.0.0.1:$hport:8000"]
    healthcheck: {http: "http://127.0.0.1:8000/index.html", interval: 100ms, timeout: 500ms}
EOF2
	run cpipe up
	[ "$status" -eq 0 ] || fail "up failed"
	run cpipe ps
	assert_contains "healthy"
	refute_contains "unhealthy"
	httpd=$(procs_matching "busybox httpd -f -p 8000 -h /www")
	[ -n "$httpd" ] || fail "no httpd"
	kill -STOP $httpd
	run cpipe ps
	kill -CONT $httpd
	assert_contains "unhealthy"
	run cpipe ps
	refute_contains "unhealthy"
}

@test "Ctrl-C and a failed run both leave no network behind" {
	hport=$(free_port)
	start_run_with_job 349 || return 1
	pids=$(net_pids)
	kill -INT "$pid"
	wait "$pid" && rc=0 || rc=$?
	[ "$rc" -eq 130 ] || fail "expected 130, got $rc"
	network_gone "$PROJ" "$pids" || fail "network left after Ctrl-C"
	port_closed "$hport" || fail "host port still forwarded after Ctrl-C"

	spec <<EOF2
stages:
  web:
    service: true
    command: sleep 300
    ports: ["127.0.0.1:$hport:8000"]
    healthcheck: {http: "http://127.0.0.1:8000/", interval: 100ms, timeout: 200ms, retries: 3}
  job:
    command: "true"
    depends_on: {web: {condition: service_healthy}}
EOF2
	run cpipe run
	[ "$status" -eq 1 ] || fail "expected 1, got $status"
	assert_contains "did not become healthy"
	network_gone || fail "network left after a failed run"
	port_closed "$hport" || fail "host port still forwarded after a failed run"
}

@test "a service started later by another cpipe joins the running network with its ports" {
	p1=$(free_port)
	p2=$(free_port)
	spec <<EOF2
stages:
  web1:
    service: true
    command: busybox httpd -f -p 8000 -h /www
    volumes: ["./www:/www:ro"]
    ports: ["127.0.0.1:$p1:8000"]
    healthcheck: {http: "http://127.0.0.1:8000/index.html", interval: 100ms}
  web2:
    service: true
    command: busybox httpd -f -p 8001 -h /www
    volumes: ["./www:/www:ro"]
    ports: ["127.0.0.1:$p2:8001"]
    healthcheck: {http: "http://127.0.0.1:8001/index.html", interval: 100ms}
EOF2
	run cpipe up web1
	[ "$status" -eq 0 ] || fail "up web1 failed"
	holder=$(jq -r .holder .cpipe/run/netns.json)
	run cpipe up web2
	[ "$status" -eq 0 ] || fail "up web2 failed"
	[ "$(jq -r .holder .cpipe/run/netns.json)" = "$holder" ] || fail "web2 got another network"
	[ "$(curl -fsS "http://127.0.0.1:$p1/index.html")" = from-inside ] || fail "web1 not forwarded"
	[ "$(curl -fsS "http://127.0.0.1:$p2/index.html")" = from-inside ] || fail "web2 not forwarded"
}
