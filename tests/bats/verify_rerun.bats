#!/usr/bin/env bats
bats_require_minimum_version 1.5.0
# cpipe verify --rerun: each stage runs again on scratch copies of its
# writable mounts and its outputs are compared with cpipe.lock. A stage
# that reproduces passes, one that does not is named with the outputs that
# differ (exit 1); the volumes, bind mounts, run records and cpipe.lock are
# left exactly as they were.

load helpers
load docker_helpers

EXAMPLE="$BATS_TEST_DIRNAME/../../examples/catgif"

# docker_helpers' setup skips without Docker; only the docker test needs it.
setup() {
	PROJ="$BATS_TEST_TMPDIR/proj"
	mkdir -p "$PROJ"
	cd "$PROJ" || return 1
}

need_docker() {
	[ "$DOCKER_READY" = 1 ] || skip "docker unavailable: $DOCKER_WHY"
	P="cpt-$(printf %04x $RANDOM)-$BATS_TEST_NUMBER"
	SOCK=${DOCKER_HOST:-unix:///var/run/docker.sock}
	SOCK=${SOCK#unix://}
}

# prep writes the input; det derives its output from it (and fails if it
# finds its own earlier output: a rerun must start without it); noise
# writes random bytes into a bind mount. $1: extra top-level lines.
rerun_spec() {
	spec <<EOF
${1:-}
volumes:
  vol: {}
stages:
  prep:
    ${IMAGE:-}
    command: sh -c 'mkdir -p /vol/in && echo hello > /vol/in/x'
    volumes: [vol:/vol]
    outputs: [vol:/in]
  det:
    ${IMAGE:-}
    command: sh -c 'test ! -e /vol/det.txt || exit 3; tr a-z A-Z < /vol/in/x > /vol/det.txt'
    volumes: [vol:/vol]
    inputs: [vol:/in]
    outputs: [vol:/det.txt]
  noise:
    ${IMAGE:-}
    command: sh -c 'head -c 16 /dev/urandom > /out/r.bin; echo same > /out/same.txt'
    volumes: [./out:/out]
    outputs: [./out/r.bin, ./out/same.txt]
EOF
}

# Checksums of everything a rerun must not touch: the lock, every file of
# the project (volumes, bind mounts, records, logs, store) but .cpipe/tmp,
# and what git sees. $1: a volume's directory outside the project (docker).
snapshot() {
	{
		sha256sum cpipe.lock
		find . ${1:+"$1"} -path ./.cpipe/tmp -prune -o -printf '%p %y %m %s\n' | sort
		find . ${1:+"$1"} -path ./.cpipe/tmp -prune -o -type f -print0 | sort -z | xargs -0 sha256sum
		git status --porcelain
	} 2>&1
}

@test "verify --rerun: a deterministic stage reproduces, a random one is named with its output" {
	git init -q . && git config user.email t@example.com && git config user.name t
	rerun_spec
	run_ok run
	git add -A && git commit -qm locked
	before=$(snapshot)
	run cpipe verify --rerun det
	[ "$status" -eq 0 ] || fail "det should reproduce (exit $status)"
	assert_contains "det: reproduced"
	run cpipe verify --rerun
	[ "$status" -eq 1 ] || fail "noise should not reproduce (exit $status)"
	assert_contains "prep: reproduced"
	assert_contains "det: reproduced"
	assert_contains "noise: not reproduced: ./out/r.bin: locked sha256:"
	refute_contains "./out/same.txt"
	assert_contains "1 stage did not reproduce"
	# --json: stdout holds the result alone, the stage's output goes to stderr.
	run --separate-stderr cpipe verify --rerun --json noise
	[ "$status" -eq 1 ] || fail "json exit $status"
	[ "$(jq -c '[.[] | .stage, .reproduced, [.outputs[].artifact]]' <<<"$output")" = \
	  '["noise",false,["./out/r.bin"]]' ] || fail "json result"
	after=$(snapshot)
	[ "$before" = "$after" ] || fail "verify --rerun changed the project: $(diff <(echo "$before") <(echo "$after"))"
	[ -z "$(ls .cpipe/tmp)" ] || fail "scratch copies left: $(ls .cpipe/tmp)"
	run_ok verify
}

@test "verify --rerun refuses a stage it cannot compare, before running anything" {
	rerun_spec
	run cpipe verify --rerun det
	[ "$status" -eq 2 ] || fail "no lock yet: exit $status"
	run_ok run prep
	run cpipe verify --rerun det
	[ "$status" -eq 2 ] || fail "det not in the lock: exit $status"
	assert_contains 'stage "det": is not in cpipe.lock'
	run cpipe verify --rerun nosuch
	[ "$status" -eq 2 ] || fail "unknown stage: exit $status"
	assert_contains 'unknown stage "nosuch"'
	run cpipe verify det
	[ "$status" -eq 2 ] || fail "a stage without --rerun: exit $status"
}

@test "verify --rerun on inputs other than the locked ones says so instead of rerunning" {
	rerun_spec
	run_ok run
	echo bye > "$(vol vol)/in/x"
	run cpipe verify --rerun det
	[ "$status" -eq 1 ] || fail "exit $status"
	assert_contains 'stage "det": input vol:/in is sha256:'
	assert_contains "not what cpipe.lock recorded"
	refute_contains "running det"
	# Once the locked input is back (restored from the store), det reproduces.
	run_ok run prep
	run_ok verify --rerun det
	assert_contains "det: reproduced"
}

@test "docker: verify --rerun reproduces a deterministic stage and names a random one" {
	need_docker
	git init -q . && git config user.email t@example.com && git config user.name t
	IMAGE="image: cpipe-test/busybox" rerun_spec "name: $P
runtime: docker"
	run_ok run
	git add -A && git commit -qm locked
	mp=$(api "http://d/volumes/${P}_vol" | jq -r .Mountpoint)
	[ -d "$mp" ] || fail "volume mountpoint $mp"
	before=$(snapshot "$mp")
	run cpipe verify --rerun det noise
	[ "$status" -eq 1 ] || fail "noise should not reproduce (exit $status)"
	assert_contains "det: reproduced"
	assert_contains "noise: not reproduced: ./out/r.bin"
	refute_contains "./out/same.txt"
	after=$(snapshot "$mp")
	[ "$before" = "$after" ] || fail "verify --rerun changed the project: $(diff <(echo "$before") <(echo "$after"))"
	[ -z "$(ls .cpipe/tmp)" ] || fail "scratch copies left: $(ls .cpipe/tmp)"
	run_ok verify
}

# The committed fixture (500 images) keeps this to seconds.
catgif_project() {
	make -s -C "$EXAMPLE" > /dev/null
	cp -r "$EXAMPLE"/{cpipe.yml,Makefile,src,fixture,catgif} "$PROJ"/
	export CATGIF_DATA=./fixture
}

@test "catgif: train with procs: 1 reproduces byte for byte; with procs: 2 it is named" {
	catgif_project
	run_ok run train
	before=$(sha256sum cpipe.lock; find .cpipe/volumes .cpipe/runs -type f -print0 | sort -z | xargs -0 sha256sum)
	run cpipe verify --rerun train
	[ "$status" -eq 0 ] || fail "train with procs 1 should reproduce (exit $status)"
	assert_contains "train: reproduced"
	after=$(sha256sum cpipe.lock; find .cpipe/volumes .cpipe/runs -type f -print0 | sort -z | xargs -0 sha256sum)
	[ "$before" = "$after" ] || fail "the lock, a record or the volume changed"
	sed -i 's/procs: 1}/procs: 2}/' cpipe.yml
	grep -q 'procs: 2}' cpipe.yml || fail "spec not edited"
	run_ok run train
	run cpipe verify --rerun train
	[ "$status" -eq 1 ] || fail "Hogwild training should not reproduce (exit $status)"
	assert_contains "train: not reproduced: catgif:/model/catgif.ckpt"
}

@test "verify --rerun starts the services a stage depends on, on the same scratch copies" {
	spec <<'EOF'
volumes:
  vol: {}
stages:
  srv:
    service: true
    command: sh -c 'echo up > /vol/srv.txt; exec sleep 1000'
    volumes: [vol:/vol]
  job:
    command: sh -c 'i=0; while [ ! -e /vol/srv.txt ] && [ $$i -lt 200 ]; do sleep 0.05; i=$$((i + 1)); done; cat /vol/srv.txt > /vol/out.txt'
    volumes: [vol:/vol]
    depends_on: {srv: {condition: service_started}}
    outputs: [vol:/out.txt]
EOF
	run_ok run
	rm "$(vol vol)/srv.txt"
	run_ok verify --rerun
	assert_contains "starting service srv"
	assert_contains "job: reproduced"
	assert_contains "srv stopped"
	[ ! -e "$(vol vol)/srv.txt" ] || fail "the service wrote into the real volume"
	[ -z "$(procs_matching 'sleep 1000')" ] || fail "the service was left running"
}

@test "verify --rerun interrupted leaves the project as it was and no scratch copy" {
	spec <<'EOF'
volumes:
  vol: {}
stages:
  slow:
    command: sh -c 'echo x > /vol/partial; sleep 30; echo done > /vol/out.txt'
    volumes: [vol:/vol]
    outputs: [vol:/out.txt]
EOF
	sed -i 's/sleep 30; //' cpipe.yml
	run_ok run
	sed -i 's/echo x > \/vol\/partial; /&sleep 30; /' cpipe.yml
	rm "$(vol vol)/partial"
	before=$(sha256sum cpipe.lock; find .cpipe/volumes .cpipe/runs -printf '%p %s\n' | sort)
	"$CPIPE_BIN" verify --rerun slow > out.log 2>&1 &
	pid=$!
	for ((i = 0; i < 200; i++)); do
		compgen -G '.cpipe/tmp/rerun.*/0/partial' > /dev/null && break
		sleep 0.05
	done
	compgen -G '.cpipe/tmp/rerun.*/0/partial' > /dev/null || { kill -9 $pid; fail "the rerun never started"; }
	kill -INT $pid
	rc=0
	wait $pid || rc=$?
	[ "$rc" -eq 130 ] || fail "exit $rc, not 130: $(cat out.log)"
	[ -z "$(ls .cpipe/tmp)" ] || fail "scratch left: $(ls .cpipe/tmp)"
	after=$(sha256sum cpipe.lock; find .cpipe/volumes .cpipe/runs -printf '%p %s\n' | sort)
	[ "$before" = "$after" ] || fail "the project changed: $(diff <(echo "$before") <(echo "$after"))"
}
