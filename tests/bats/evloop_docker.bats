#!/usr/bin/env bats
# The executor's loop on the Engine API runtimes: a health-check command
# (the exec API) or an image build that takes its time holds up no other
# stage's lines, Ctrl-C stops an image build under way at once, leaving
# nothing behind, and a stage runs the image ID resolved for its record.

load helpers
load docker_helpers
load evloop_helpers

# cpipe processes working in this test's project.
cpipes_in_project() {
	local d bin
	bin=$(readlink -f "$CPIPE_BIN")
	for d in /proc/[0-9]*; do
		[ "$(readlink "$d/cwd" 2>/dev/null)" = "$PROJ" ] &&
			[ "$(readlink "$d/exe" 2>/dev/null)" = "$bin" ] && echo "${d#/proc/}"
	done
	return 0
}

@test "a health-check command (exec API) killed at its 3 s timeout does not delay another stage's lines" {
	spec <<EOF
name: $P
stages:
  slowcheck:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'trap "exit 0" TERM; sleep 600 & wait'
    healthcheck:
      test: ["CMD-SHELL", "sleep 5.062"]
      timeout: 3s
      interval: 100ms
      retries: 100
  ticker:
    image: cpipe-test/busybox
    command: sh -c 'for i in \$\$(seq 50); do echo tick \$\$i; sleep 0.1; done'
EOF
	run dcpipe run --progress json slowcheck ticker
	[ "$status" -eq 0 ] || fail "run failed ($status)"
	assert_ticker_steady 50
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

# The image $P-app:latest, as the engine lists it ("[]" when absent).
app_images() {
	api "http://d/images/json?filters=$(printf '{"reference":["%s"]}' "$P-app" | jq -sRr @uri)"
}

# Interrupts `cpipe $1` in the RUN step of the build it starts and checks
# what a user would: exit 130 within 2 s, nothing of the build left.
interrupt_build() {
	local verb=$1
	# A step whose process the test can find by its unique command line.
	# Podman (4.3) gives up a build whose client left only once the step
	# under way ends, so there it is short and waited for.
	local secs=97
	[ "$RT" = podman ] && secs=6
	step="sleep $secs.$RANDOM"
	cat > Dockerfile <<EOF
FROM cpipe-test/busybox:latest
RUN $step
EOF
	spec <<EOF
name: $P
stages:
  app:
    build: .
    image: $P-app:latest
    command: echo never-ran
EOF
	"$CPIPE_BIN" --runtime "$RT" "$verb" > out.log 2>&1 &
	local pid=$! i
	for ((i = 0; i < 300; i++)); do
		[ -n "$(procs_matching "$step")" ] && break
		sleep 0.1
	done
	output=$(cat out.log)
	[ -n "$(procs_matching "$step")" ] || { kill -INT "$pid"; wait "$pid"; fail "the build step never ran"; }
	local t0 rc=0 ms
	t0=$(now_ms)
	kill -INT "$pid"
	wait "$pid" || rc=$?
	ms=$(($(now_ms) - t0))
	output=$(cat out.log)
	[ "$rc" -eq 130 ] || fail "expected exit 130, got $rc"
	[ "$ms" -lt 2000 ] || fail "cpipe took $ms ms to stop"
	refute_contains "never-ran"
	[ -z "$(cpipes_in_project)" ] || fail "cpipe processes left: $(cpipes_in_project)"
	if [ "$RT" = podman ]; then
		for ((i = 0; i < 150; i++)); do
			[ -z "$(procs_matching "$step")" ] && break
			sleep 0.1
		done
		sleep 1 # past the end of the step: the build would go on and tag now
	fi
	[ -z "$(procs_matching "$step")" ] || fail "the build step is still running"
	[ "$(api "http://d/containers/json?all=1" | jq --arg s "$step" '[.[] | select(.Command | contains($s))] | length')" -eq 0 ] ||
		fail "the build's container was left behind"
	[ "$(app_images | jq length)" -eq 0 ] || fail "the image was tagged"
}

@test "Ctrl-C during an image build of a run exits 130 within 2 s and leaves no build container, image or process" {
	interrupt_build run
}

@test "Ctrl-C during cpipe build exits 130 within 2 s and leaves no build container, image or process" {
	interrupt_build build
}

# The time, in ms since the epoch, of the first --progress json event in
# $output that the jq filter $1 selects (empty when none).
event_ms() {
	jq -rR "fromjson? | select($1) | .time" <<< "$output" | head -1 |
		jq -R 'select(length > 0) | (.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber)'
}

# The longest time, in ms, within the window from $2 to $3 (ms since the
# epoch) in which cpipe showed no "log" event of stage $1 in $output: gaps
# between its consecutive lines, cut to the window.
max_log_gap_within() {
	jq -rR --arg s "$1" 'fromjson? | select(.event == "log" and .stage == $s) | .time' <<< "$output" |
		jq -sR --argjson from "$2" --argjson to "$3" 'split("\n") | map(select(length > 0)
			| (.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber)) as $t
			| [range(1; $t | length) as $i | select($t[$i] > $from and $t[$i - 1] < $to)
			   | ([$t[$i], $to] | min) - ([$t[$i - 1], $from] | max)] | max // 0'
}

@test "an image build under way (a RUN that takes 3 s) does not delay another stage's lines (-j 2)" {
	# Built from scratch each time: the RUN line is new to the builder.
	cat > Dockerfile <<EOF
FROM cpipe-test/busybox:latest
RUN echo $P && sleep 3
EOF
	# app waits for go, so its image builds while ticker prints (cpipe has
	# shown ticker's first lines by then).
	spec <<EOF
name: $P
stages:
  go:
    image: cpipe-test/busybox
    command: sleep 2
  ticker:
    image: cpipe-test/busybox
    command: sh -c 'for i in \$\$(seq 100); do echo tick \$\$i; sleep 0.1; done'
  app:
    build: .
    image: $P-app:latest
    command: echo app-ran
    depends_on: [go]
EOF
	run dcpipe run -j 2 --progress json
	[ "$status" -eq 0 ] || fail "run failed ($status)"
	[[ "$output" == *'"stage":"app","stream":"stdout","line":"app-ran"'* ]] || fail "app did not run"
	local first last building ready gap
	first=$(event_ms '.event == "log" and .stage == "ticker"')
	last=$(jq -rR 'fromjson? | select(.event == "log" and .stage == "ticker") | .time' <<< "$output" | tail -1 |
		jq -R '(.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber)')
	building=$(event_ms '.event == "image" and .stage == "app" and .state == "building"')
	ready=$(event_ms '.event == "image" and .stage == "app" and .state == "ready"')
	[ -n "$building" ] && [ -n "$ready" ] || fail "no image events for app's build"
	[ "$((ready - building))" -ge 2500 ] || fail "the build took $((ready - building)) ms: its RUN did not run"
	[ "$building" -gt "$first" ] && [ "$ready" -lt "$last" ] ||
		fail "the build ($building..$ready) did not happen while ticker ran ($first..$last)"
	# A build holding the loop up would show a gap of ~3000 ms while it runs.
	gap=$(max_log_gap_within ticker "$building" "$ready")
	[ "$gap" -lt 1000 ] || fail "ticker's lines stopped for $gap ms while app's image built"
	assert_ticker_steady 100
	# The build's own lines come as image events of app.
	jq -seR '[split("\n")[] | fromjson? | select(.event == "image" and .stage == "app" and .line)] | length > 0' <<< "$output" > /dev/null ||
		fail "no build progress lines"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}

@test "a stage runs the image ID its record names, even when the tag moves before it starts" {
	# Two images under one name: a (now) and b (once the key is computed).
	mkdir a b w
	printf 'FROM cpipe-test/busybox:latest\nRUN echo from-a > /which\nLABEL com.cpipe.project=%s\n' "$P" > a/Dockerfile
	printf 'FROM cpipe-test/busybox:latest\nRUN echo from-b > /which\nLABEL com.cpipe.project=%s\n' "$P" > b/Dockerfile
	docker build -q -t "$P-tool:latest" a > /dev/null 2>&1
	docker build -q -t "$P-other:latest" b > /dev/null 2>&1
	local a_id b_id
	a_id=$(api "http://d/images/$P-tool:latest/json" | jq -r .Id)
	b_id=$(api "http://d/images/$P-other:latest/json" | jq -r .Id)
	[ "$a_id" != "$b_id" ] || fail "the two images are one"
	# use's key (and its image ID) is computed at once; it starts only once
	# gate is healthy, which the test decides after moving the tag.
	spec <<EOF
name: $P
stages:
  gate:
    image: cpipe-test/busybox
    service: true
    command: sh -c 'trap "exit 0" TERM; sleep 600 & wait'
    volumes: ["./w:/w"]
    healthcheck:
      test: ["CMD", "test", "-f", "/w/go"]
      interval: 100ms
      retries: 600
  use:
    image: $P-tool:latest
    command: cat /which
    depends_on:
      gate: {condition: service_healthy}
EOF
	"$CPIPE_BIN" --runtime "$RT" run use > out.log 2>&1 &
	local pid=$! i
	for ((i = 0; i < 300; i++)); do
		[ -n "$(project_containers)" ] && break
		sleep 0.1
	done
	[ -n "$(project_containers)" ] || { kill -INT "$pid"; wait "$pid"; fail "gate never started: $(cat out.log)"; }
	docker tag "$P-other:latest" "$P-tool:latest"
	touch w/go
	local rc=0
	wait "$pid" || rc=$?
	output=$(cat out.log)
	[ "$rc" -eq 0 ] || fail "run failed ($rc)"
	[ "$(api "http://d/images/$P-tool:latest/json" | jq -r .Id)" = "$b_id" ] || fail "the tag did not move"
	# What ran is image a, the one the record names.
	assert_line_re "^use +\\| from-a$"
	refute_contains "from-b"
	rec=$(ls "$PROJ"/.cpipe/runs/*.json | sort | tail -1)
	[ "$(jq -r '.stages[] | select(.name == "use") | .image.digest' "$rec")" = "$a_id" ] ||
		fail "the record names $(jq -r '.stages[] | select(.name == "use") | .image.digest' "$rec"), not $a_id"
	# The service's entry too names the ID it ran.
	[ "$(jq -r '.stages[] | select(.name == "gate") | .image.digest' "$rec")" = "$(api "http://d/images/cpipe-test/busybox:latest/json" | jq -r .Id)" ] ||
		fail "gate's record names $(jq -r '.stages[] | select(.name == "gate") | .image.digest' "$rec")"
}

@test "a failing image build fails its stage with the daemon's message; what depends on it never runs" {
	cat > Dockerfile <<EOF
FROM cpipe-test/busybox:latest
RUN echo about-to-fail && exit 7
EOF
	spec <<EOF
name: $P
stages:
  app:
    build: .
    image: $P-app:latest
    command: echo app-ran
  after:
    image: cpipe-test/busybox
    command: echo after-ran
    depends_on: [app]
EOF
	run dcpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "building image \"$P-app:latest\" for stage \"app\": "
	assert_contains "exit 7"
	assert_line_re "^app +\\| about-to-fail$"
	refute_contains "app-ran"
	refute_contains "after-ran"
	[ "$(app_images | jq length)" -eq 0 ] || fail "the image was tagged"
	[ -z "$(project_containers)" ] || fail "containers left behind: $(project_containers)"
}
