#!/usr/bin/env bats
# examples/catgif/ci/github-actions.yml, run here: its `run:` steps, in the
# workflow's order, on two fresh clones of this repository sharing one
# remote cache (a directory). The first runs the pipeline and pushes; the
# second, a new machine as far as cpipe can tell, restores every stage and
# runs nothing.

load helpers

ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
WORKFLOW="$ROOT/examples/catgif/ci/github-actions.yml"

# Writes each step's `run:` script of workflow $1 to $2/NN.sh, in order. A
# script is a one-line `run: CMD` or a `run: |` block (the lines indented
# deeper than `run:`, that indentation removed); any other block style is
# refused, so a step is never silently dropped.
workflow_steps() {
	mkdir -p "$2"
	awk -v out="$2" '
	function indent(s) { match(s, /^ */); return RLENGTH }
	function flush() { if (n) close(file); }
	inblock {
		if ($0 ~ /^[[:space:]]*$/) { print "" > file; next }
		if (indent($0) > key) {
			if (strip < 0) strip = indent($0)
			print substr($0, strip + 1) > file
			next
		}
		inblock = 0
	}
	/^[[:space:]]*(- )?run:/ {
		line = $0
		sub(/^[[:space:]]*(- )?/, "", line)
		key = indent($0) + (($0 ~ /^[[:space:]]*- run:/) ? 2 : 0)
		val = substr(line, 5)
		sub(/^[[:space:]]*/, "", val)
		flush()
		file = sprintf("%s/%02d.sh", out, ++n)
		if (val == "|") { inblock = 1; strip = -1; next }
		if (val ~ /^[|>]/) { print "unsupported block style: " $0 > "/dev/stderr"; exit 2 }
		print val > file
	}
	END { flush() }
	' "$1"
}

@test "the workflow's shell steps come in the order the example promises" {
	workflow_steps "$WORKFLOW" steps
	cat steps/*.sh > all.sh
	order=$(grep -n -e 'make -C examples/catgif' -e 'run --pull' -e 'status --check' -e ' verify' \
		-e 'report -o report.html' -e ' push' all.sh | cut -d: -f1 | tr '\n' ' ')
	sorted=$(echo "$order" | tr ' ' '\n' | grep . | sort -n | tr '\n' ' ')
	[ "$(echo "$order" | wc -w)" -eq 6 ] || fail "steps found at lines: $order"
	[ "$order" = "$sorted" ] || fail "steps out of order: lines $order"
	grep -q 'uses: actions/upload-artifact' "$WORKFLOW" || fail "no artifact upload"
	grep -A4 'uses: actions/upload-artifact' "$WORKFLOW" | grep -q 'path: report.html' || fail "upload is not the report"
}

@test "two fresh clones run the workflow's steps: the second restores everything from the remote cache" {
	workflow_steps "$WORKFLOW" "$BATS_TEST_TMPDIR/steps"
	[ "$(ls "$BATS_TEST_TMPDIR/steps" | wc -l)" -ge 7 ] || fail "too few steps"
	# A CI runner's environment: not the variables of the make that runs
	# the suites (the ASan build's BUILD and CFLAGS would build elsewhere).
	unset BUILD CFLAGS LSAN_OPTIONS
	# The steps configure git globally: not this machine's.
	export HOME="$BATS_TEST_TMPDIR/home"
	mkdir -p "$HOME"
	export CPIPE_REMOTE="$BATS_TEST_TMPDIR/remote"
	mkdir -p "$CPIPE_REMOTE"
	export CATGIF_DATA=./fixture
	CATGIF_PORT=$((20000 + RANDOM % 20000))
	export CATGIF_PORT
	for n in 1 2; do
		clone="$BATS_TEST_TMPDIR/clone$n"
		git clone -q "$ROOT" "$clone" || fail "clone $n"
		cd "$clone" || return 1
		for s in "$BATS_TEST_TMPDIR"/steps/*.sh; do
			log="$BATS_TEST_TMPDIR/clone$n-$(basename "$s" .sh).log"
			bash --noprofile --norc -eo pipefail "$s" > "$log" 2>&1 ||
				fail "clone $n, step $(basename "$s"): $(cat "$s"): $(tail -20 "$log")"
		done
		[ -s report.html ] || fail "clone $n wrote no report.html"
		grep -q 'data-stage="infer"' report.html || fail "clone $n: report lacks the stages"
	done
	cat "$BATS_TEST_TMPDIR"/clone1-*.log > first.log
	cat "$BATS_TEST_TMPDIR"/clone2-*.log > second.log
	grep -q "cpipe: running train" first.log || fail "the first clone did not train: $(cat first.log)"
	! grep -q "cpipe: running " second.log || fail "the second clone ran something: $(grep 'cpipe: running ' second.log)"
	for s in prepare train evaluate infer; do
		grep -q "cpipe: $s restored from run" second.log || fail "$s not restored: $(cat second.log)"
	done
	# stdout alone: the Dockerfile's warnings (RUN steps the local runtime
	# skips) go to stderr.
	output=$(./cpipe -C examples/catgif show latest --json 2> /dev/null)
	echo "$output" | jq -e '[.stages[] | select(.status == "ran")] | length == 0' > /dev/null ||
		fail "the second clone's run record shows stages that ran"
}
