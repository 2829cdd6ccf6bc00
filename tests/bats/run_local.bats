#!/usr/bin/env bats
# cpipe run on the embedded local runtime: order, volumes, mounts, subsets,
# concurrency, failure, interruption, locking.

load helpers

three_stages() {
	spec <<'EOF'
volumes:
  work: {}
stages:
  prepare:
    command: sh -c 'echo raw-data > /vol/data.txt; echo prepared'
    volumes: [work:/vol]
  train:
    command: sh -c 'tr a-z A-Z < /vol/data.txt > /vol/model.txt; echo trained'
    volumes: [work:/vol]
    depends_on: [prepare]
  evaluate:
    command: sh -c 'wc -c < /vol/model.txt > /vol/metrics.txt; echo evaluated'
    volumes: [work:/vol]
    depends_on: [train]
EOF
}

@test "three stages share a named volume and run in dependency order" {
	three_stages
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	[ "$(cat "$(vol work)/model.txt")" = "RAW-DATA" ]
	[ "$(cat "$(vol work)/metrics.txt")" = "9" ]
	# Logs stream prefixed with the stage name, in order.
	[[ "$output" == *"prepare  | prepared"*"train    | trained"*"evaluate | evaluated"* ]] || fail "prefixed logs out of order"
}

@test "logs of each stage are kept under .cpipe/logs" {
	three_stages
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	log=$(ls "$PROJ"/.cpipe/logs/*/train.log)
	[ "$(cat "$log")" = "trained" ]
}

@test "named volume appears at the spec's path and nothing is created on the host" {
	spec <<'EOF'
volumes:
  data: {}
stages:
  write:
    command: sh -c 'echo hello > /cpipe-bats-target/x && cat /proc/self/mountinfo | grep -c cpipe-bats-target'
    volumes: [data:/cpipe-bats-target]
EOF
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	[ ! -e /cpipe-bats-target ] || fail "/cpipe-bats-target leaked onto the host"
	[ "$(cat "$(vol data)/x")" = hello ]
}

@test "bind mounts appear at their target and :ro is enforced" {
	mkdir -p data
	echo "input-bytes" > data/in.txt
	spec <<'EOF'
stages:
  read:
    command: sh -c 'cat /data/in.txt'
    volumes: ["./data:/data:ro"]
  write:
    command: sh -c 'echo x > /data/out.txt'
    volumes: ["./data:/data:ro"]
    depends_on: [read]
EOF
	run cpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "read  | input-bytes"
	assert_contains "Read-only file system"
	assert_contains 'stage "write" failed with exit code'
	[ ! -e data/out.txt ] || fail "write through :ro mount reached the host"
}

@test ":ro on a named volume is enforced while rw works" {
	spec <<'EOF'
volumes:
  v: {}
stages:
  writer:
    command: sh -c 'echo ok > /v/f'
    volumes: [v:/v]
  reader:
    command: sh -c 'cat /v/f && ! touch /v/g 2>/dev/null && echo readonly-held'
    volumes: ["v:/v:ro"]
    depends_on: [writer]
EOF
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "reader | ok"
	assert_contains "reader | readonly-held"
	[ ! -e "$(vol v)/g" ]
}

@test "run STAGE runs it and its upstream only; --no-deps only the named one" {
	three_stages
	run cpipe run train
	[ "$status" -eq 0 ] || fail "run train failed"
	assert_contains "prepare | prepared"
	assert_contains "train   | trained"
	refute_contains "evaluated"
	rm "$(vol work)/data.txt"
	echo other > "$(vol work)/data.txt"
	run cpipe run --no-deps evaluate
	[ "$status" -eq 0 ] || fail "run --no-deps failed"
	assert_contains "evaluate | evaluated"
	refute_contains "prepared"
	refute_contains "trained"
}

@test "the order is deterministic: topological, ties in spec order" {
	spec <<'EOF'
stages:
  d:
    command: echo d
    depends_on: [b, c]
    outputs: []
  c:
    command: echo c
    depends_on: [a]
    outputs: []
  b:
    command: echo b
    depends_on: [a]
    outputs: []
  a:
    command: echo a
    outputs: []
EOF
	for i in 1 2 3; do
		run cpipe -q run
		[ "$status" -eq 0 ] || fail "run failed"
		[ "$(echo "$output" | sed 's/ *|.*//' | tr '\n' ' ')" = "a c b d " ] || fail "order was: $output"
	done
}

@test "-j 2 runs independent stages at the same time" {
	# Each stage waits for the other's file: only concurrent runs can pass.
	spec <<'EOF'
volumes:
  v: {}
stages:
  left:
    command: sh -c 'touch /v/left; for i in $(seq 100); do [ -e /v/right ] && exit 0; sleep 0.05; done; exit 7'
    volumes: [v:/v]
    outputs: []
  right:
    command: sh -c 'touch /v/right; for i in $(seq 100); do [ -e /v/left ] && exit 0; sleep 0.05; done; exit 7'
    volumes: [v:/v]
    outputs: []
EOF
	run cpipe run -j 2
	[ "$status" -eq 0 ] || fail "-j 2 did not run both at once"
	rm -f "$(vol v)"/*
	run cpipe run -j 1
	[ "$status" -eq 1 ] || fail "-j 1 should have run them one after another"
	assert_contains "exit code 7"
}

@test "-j 2 starts a job only after its upstream ended, and runs an independent one beside it" {
	# up and side meet (each fails unless the other starts while it runs);
	# down and down2, listed before side, must not take the free slot while
	# up still runs.
	spec <<'EOF2'
volumes:
  v: {}
x-s: &s
  volumes: [v:/v]
stages:
  up:
    <<: *s
    command: sh -c 'touch /v/up.start; for i in $$(seq 100); do [ -e /v/side.start ] && break; sleep 0.05; done; [ -e /v/side.start ] || exit 7; sleep 1; date +%s%N > /v/up.end'
    outputs: [v:/up.end]
  down:
    <<: *s
    command: sh -c 'date +%s%N > /v/down.start; if [ -s /v/up.end ]; then echo after > /v/down.saw; else echo before > /v/down.saw; fi'
    depends_on: [up]
  down2:
    <<: *s
    command: sh -c 'if [ -s /v/up.end ]; then echo after > /v/down2.saw; else echo before > /v/down2.saw; fi'
    inputs: [v:/up.end]
  side:
    <<: *s
    command: sh -c 'touch /v/side.start; for i in $$(seq 100); do [ -e /v/up.start ] && exit 0; sleep 0.05; done; exit 7'
EOF2
	run cpipe run -j 2
	[ "$status" -eq 0 ] || fail "run failed"
	v=$(vol v)
	[ "$(cat "$v/down.saw")" = after ] || fail "down (depends_on) started while up was still running"
	[ "$(cat "$v/down2.saw")" = after ] || fail "down2 (inputs) started while up was still running"
	[ "$(cat "$v/down.start")" -ge "$(cat "$v/up.end")" ] || fail "down started at $(cat "$v/down.start"), before up ended at $(cat "$v/up.end")"
}

@test "a failing stage stops the pipeline: downstream never starts, siblings are stopped" {
	spec <<'EOF'
stages:
  slow:
    command: sh -c 'sleep 317; echo slow-finished'
  bad:
    command: sh -c 'echo about to fail; exit 3'
  after:
    command: echo after-ran
    depends_on: [bad]
EOF
	start=$SECONDS
	run cpipe run -j 2
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains 'stage "bad" failed with exit code 3'
	assert_contains "log: $PROJ/.cpipe/logs/"
	refute_contains "after-ran"
	refute_contains "slow-finished"
	[ $((SECONDS - start)) -lt 30 ] || fail "the sibling was not stopped"
	[ -z "$(procs_matching 'sleep 317')" ] || fail "a stage process was left running"
}

@test "Ctrl-C stops every stage process, nothing is left running, exit 130" {
	spec <<'EOF'
stages:
  a:
    command: sh -c 'sleep 331 & sleep 332; echo never'
  b:
    command: sh -c 'trap "" TERM; echo started; sleep 333'
EOF
	"$CPIPE_BIN" run -j 2 > out.log 2>&1 &
	pid=$!
	for i in $(seq 100); do
		grep -q "b | started" out.log && [ -n "$(procs_matching 'sleep 331')" ] && break
		sleep 0.1
	done
	grep -q "b | started" out.log || { output=$(cat out.log); fail "stages did not start"; }
	kill -INT "$pid"
	# b ignores SIGTERM; a second Ctrl-C skips the grace period.
	sleep 0.5
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" && rc=0 || rc=$?
	output=$(cat out.log)
	[ "$rc" -eq 130 ] || fail "expected exit 130, got $rc"
	assert_contains "interrupted"
	for p in 'sleep 331' 'sleep 332' 'sleep 333'; do
		[ -z "$(procs_matching "$p")" ] || fail "$p was left running"
	done
}

@test "a second run on the same project fails clearly while one runs" {
	spec <<'EOF'
stages:
  hold:
    command: sh -c 'touch /tmp/cpipe-bats-hold-$$CPIPE_RUN_ID; sleep 341'
EOF
	"$CPIPE_BIN" run > first.log 2>&1 &
	pid=$!
	for i in $(seq 100); do
		[ -n "$(procs_matching 'sleep 341')" ] && break
		sleep 0.1
	done
	run cpipe run
	[ "$status" -eq 4 ] || fail "expected exit 4, got $status"
	assert_contains "another cpipe (pid $pid) is running"
	kill -TERM "$pid"
	wait "$pid" || true
	rm -f /tmp/cpipe-bats-hold-*
	[ -z "$(procs_matching 'sleep 341')" ]
}

@test "stage names resolve to 127.0.0.1 inside the sandbox" {
	spec <<'EOF'
stages:
  serve:
    command: "true"
  infer:
    command: sh -c 'getent hosts serve infer'
EOF
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	# One line per name asked for, both on 127.0.0.1.
	[ "$(grep -c '^infer | 127\.0\.0\.1 ' <<<"$output")" -eq 2 ] || fail "serve and infer do not both resolve to 127.0.0.1"
}

@test "environment, env_file, .env interpolation, working_dir and params reach the command" {
	mkdir -p sub
	echo "FROM_FILE=file-value" > stage.env
	echo "TAG=from-dotenv" > .env
	spec <<'EOF'
stages:
  show:
    command: sh -c 'echo "$$GREETING $$FROM_FILE $$TAGGED $$CPIPE_PARAM_LR $$(pwd)"'
    env_file: stage.env
    environment:
      GREETING: hello
      TAGGED: ${TAG}
    working_dir: /tmp
    params: {lr: 0.05}
EOF
	run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "show | hello file-value from-dotenv 0.05 /tmp"
}

@test "the host environment does not leak into stages" {
	spec <<'EOF'
stages:
  env:
    command: sh -c 'echo "secret=[$${CPIPE_BATS_LEAK:-}]"'
EOF
	CPIPE_BATS_LEAK=leaked run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "secret=[]"
}

@test "a stage without a command fails with a clear error" {
	spec <<'EOF'
stages:
  empty:
    image: busybox
EOF
	run cpipe run
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains "cpipe.yml:2:3: stage \"empty\" has no command"
}

@test "a command that does not exist fails with a clear error naming it" {
	spec <<'EOF'
stages:
  missing:
    command: cpipe-no-such-program --flag
EOF
	run cpipe run
	[ "$status" -eq 1 ] || fail "expected exit 1, got $status"
	assert_contains "cpipe-no-such-program"
}

@test "a plain docker-compose.yml with train/evaluate/infer runs as a pipeline unchanged" {
	mkdir -p app
	cat > app/train.sh <<'EOF'
#!/bin/sh
set -e
epoch=0
[ -f /model/checkpoint ] && epoch=$(cat /model/checkpoint)
echo $((epoch + 1)) > /model/checkpoint
echo "trained to epoch $((epoch + 1)) with lr=$LEARNING_RATE"
EOF
	cat > app/evaluate.sh <<'EOF'
#!/bin/sh
echo "{\"epoch\": $(cat /model/checkpoint), \"accuracy\": 0.9}" > /model/metrics.json
echo evaluated
EOF
	cat > app/infer.sh <<'EOF'
#!/bin/sh
mkdir -p /model/results
echo "prediction using epoch $(cat /model/checkpoint)" > /model/results/predictions.txt
cat /model/results/predictions.txt
EOF
	chmod +x app/*.sh
	cat > docker-compose.yml <<'EOF'
version: "3.8"
services:
  train:
    build: ./app
    image: mnist:latest
    command: ["/app/train.sh"]
    environment:
      - LEARNING_RATE=0.01
    volumes:
      - model:/model
      - ./app:/app:ro
  evaluate:
    image: mnist:latest
    command: /app/evaluate.sh
    volumes:
      - model:/model
      - ./app:/app:ro
    depends_on:
      - train
  infer:
    image: mnist:latest
    command: /app/infer.sh
    volumes:
      - model:/model
      - ./app:/app:ro
    depends_on:
      - evaluate
volumes:
  model:
EOF
	run cpipe run
	[ "$status" -eq 0 ] || fail "compose file did not run"
	assert_contains "train    | trained to epoch 1 with lr=0.01"
	assert_contains "infer    | prediction using epoch 1"
	# Nothing declares outputs, yet what each stage wrote is tracked: a
	# second run trains nothing.
	run cpipe run
	[ "$status" -eq 0 ] || fail "second run failed"
	assert_contains "train is up to date, skipped"
	assert_contains "infer is up to date, skipped"
	[ "$(cat "$(vol model)/checkpoint")" = 1 ]
	run cpipe run --force train
	[ "$status" -eq 0 ] || fail "forced run failed"
	assert_contains "trained to epoch 2"
	[ "$(cat "$(vol model)/checkpoint")" = 2 ]
	# The new checkpoint makes evaluate and infer stale; train is fresh.
	run cpipe run
	[ "$status" -eq 0 ] || fail "third run failed"
	assert_contains "train is up to date, skipped"
	assert_contains "infer    | prediction using epoch 2"
	grep -q '"epoch": 2' "$(vol model)/metrics.json"
}

@test "--dry-run prints the plan and starts nothing" {
	three_stages
	run cpipe run --dry-run evaluate
	[ "$status" -eq 0 ] || fail "dry run failed"
	[ "$(grep -v '^ ' <<< "$output" | cut -d' ' -f1 | tr '\n' ' ')" = "prepare train evaluate " ] || fail "plan: $output"
	[ ! -d .cpipe/volumes ] || fail "dry run created volumes"
}

@test "an unprivileged user runs a pipeline in a user namespace, volumes and :ro included" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to switch to nobody"
	command -v setpriv > /dev/null || skip "setpriv (util-linux) missing"
	# A directory nobody can reach (bats' own may sit under a 0700 parent).
	PROJ=$(mktemp -d /tmp/cpipe-nobody.XXXXXX)
	chmod 755 "$PROJ"
	cd "$PROJ" || fail "cd"
	mkdir -p data
	echo "readonly-input" > data/in.txt
	spec <<'EOF2'
volumes:
  v: {}
stages:
  a:
    command: sh -c 'cat /data/in.txt > /v/copy && id -u'
    volumes: [v:/v, "./data:/data:ro"]
  b:
    command: sh -c 'cat /v/copy; touch /data/x 2>/dev/null || echo ro-held'
    volumes: [v:/v, "./data:/data:ro"]
    depends_on: [a]
EOF2
	chown -R 65534:65534 "$PROJ"
	run setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$PROJ" "$CPIPE_BIN" run
	[ "$status" -eq 0 ] || fail "unprivileged run failed"
	assert_contains "a | 65534"
	assert_contains "b | readonly-input"
	assert_contains "b | ro-held"
	owner=$(stat -c %u "$PROJ/.cpipe/volumes/v/copy")
	cd / && rm -rf "$PROJ"
	[ "$owner" = 65534 ] || fail "volume file not owned by the user"
}
