#!/usr/bin/env bats
# Compose's command-line habits: options anywhere (global ones too, -- ends
# them), --help for every verb, help VERB, near-miss suggestions, config
# --services/--volumes/--images.

load helpers

pipeline() {
	spec <<'EOF2'
name: habits
volumes:
  work: {}
  cache: {}
stages:
  prepare:
    command: sh -c 'mkdir -p /w/data && echo ${params.n} > /w/data/n && echo prepared ${params.n}'
    params: {n: 1}
    volumes: [work:/w]
    outputs: [work:/data]
  train:
    image: python:3.12-slim
    command: sh -c 'cat /w/data/n && echo trained'
    volumes: [work:/w, cache:/c]
    inputs: [work:/data]
  infer:
    image: busybox
    command: echo inferred
    depends_on: [train]
EOF2
}

# The verbs `cpipe help` lists: the indented first words after "commands:".
verbs() {
	cpipe help | awk '/^commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}'
}

@test "an option after the stage names: run infer --no-deps runs infer alone" {
	pipeline
	run cpipe run infer --no-deps
	[ "$status" -eq 0 ] || fail "run infer --no-deps failed"
	assert_contains "inferred"
	refute_contains "prepared"
	refute_contains "trained"
	[ ! -e .cpipe/volumes/work/data/n ] || fail "prepare ran despite --no-deps"
}

@test "global options after the verb: -C, -f, --json, -q" {
	pipeline
	cd "$BATS_TEST_TMPDIR"
	run cpipe run prepare -C "$PROJ" -q
	[ "$status" -eq 0 ] || fail "run prepare -C DIR failed"
	[ -e "$PROJ/.cpipe/volumes/work/data/n" ] || fail "-C after the verb was not the project"
	run cpipe status train --json -C "$PROJ"
	[ "$status" -eq 0 ] || fail "status train --json failed"
	echo "$output" | jq -e '.stages | length == 1 and .[0].name == "train"' >/dev/null ||
		fail "status train --json did not print train alone as JSON"
	cp "$PROJ/cpipe.yml" "$BATS_TEST_TMPDIR/other.yml"
	printf 'stages:\n  extra:\n    command: echo extra\n' > "$BATS_TEST_TMPDIR/more.yml"
	run cpipe config --services -f "$BATS_TEST_TMPDIR/other.yml" -f "$BATS_TEST_TMPDIR/more.yml"
	[ "$status" -eq 0 ] || fail "config with -f after the verb failed"
	assert_contains "extra"
}

@test "logs STAGE --run ID: the option after the stage picks the run" {
	pipeline
	run cpipe run --set prepare.n=111 prepare
	[ "$status" -eq 0 ] || fail "first run failed"
	run cpipe run --set prepare.n=222 prepare
	[ "$status" -eq 0 ] || fail "second run failed"
	run cpipe logs prepare --run latest~1
	[ "$status" -eq 0 ] || fail "logs prepare --run latest~1 failed"
	assert_contains "prepared 111"
	refute_contains "prepared 222"
}

@test "-- ends the options: what follows is a stage name" {
	pipeline
	run cpipe run -- --no-deps
	[ "$status" -eq 2 ] || fail "expected exit 2"
	assert_contains 'unknown stage "--no-deps"'
}

@test "every verb answers --help and -h on stdout with its usage, and help VERB says the same" {
	pipeline
	local v n=0 long short viahelp summary line
	# "  -j, --jobs N    what it does" or "      --no-deps   what it does"
	local described='^  (-.,|   ) --[a-z-]+( [^ ]+)?  +[^ ]'
	for v in $(verbs); do
		n=$((n + 1))
		long=$(cpipe "$v" --help 2>/dev/null) || fail "cpipe $v --help exited $?"
		[[ "$long" == "usage: cpipe $v "* ]] || fail "cpipe $v --help: no usage line: $long"
		short=$(cpipe "$v" -h 2>/dev/null) || fail "cpipe $v -h exited $?"
		[ "$short" = "$long" ] || fail "cpipe $v -h differs from --help"
		viahelp=$(cpipe help "$v" 2>/dev/null) || fail "cpipe help $v exited $?"
		[ "$viahelp" = "$long" ] || fail "cpipe help $v differs from cpipe $v --help"
		# The summary line from the command table, and a description for each option.
		summary=$(cpipe help | awk -v v="$v" '$1 == v {sub(/^ *[^ ]+ +/, ""); print}')
		[[ "$long" == *"$summary"* ]] || fail "cpipe $v --help lacks its summary: $summary"
		while IFS= read -r line; do
			[[ "$line" =~ $described ]] ||
				fail "cpipe $v --help: option without a description: $line"
		# A long option's description may start on the next line, indented.
		done < <(awk '/^                    +[^ -]/ && prev != "" { print prev "  " $0; prev = ""; next }
			{ if (prev != "") print prev; prev = "" }
			/ --/ && !/^usage:/ && !/^global options/ { prev = $0 }
			END { if (prev != "") print prev }' <<<"$long")
	done
	[ "$n" -ge 15 ] || fail "cpipe help listed only $n verbs"
	run cpipe run --help
	assert_contains "--no-deps"
	assert_contains "--rm"
}

@test "cpipe help and cpipe --help print the overview" {
	run cpipe help
	[ "$status" -eq 0 ] || fail "cpipe help failed"
	assert_contains "commands:"
	local overview=$output
	run cpipe --help
	[ "$status" -eq 0 ] || fail "cpipe --help failed"
	[ "$output" = "$overview" ] || fail "cpipe --help differs from cpipe help"
}

@test "an unknown verb is exit 2 and suggests only a near one" {
	run cpipe stauts
	[ "$status" -eq 2 ] || fail "expected exit 2"
	assert_contains 'unknown command "stauts"'
	assert_contains 'did you mean "status"?'
	run cpipe xyzzy
	[ "$status" -eq 2 ] || fail "expected exit 2"
	assert_contains 'unknown command "xyzzy"'
	refute_contains "did you mean"
	run cpipe help stauts
	[ "$status" -eq 2 ] || fail "help of an unknown verb: expected exit 2"
	assert_contains 'did you mean "status"?'
}

@test "an unknown option is exit 2 naming it, the verb, and the verb's --help" {
	pipeline
	run cpipe run prepare --bogus
	[ "$status" -eq 2 ] || fail "expected exit 2"
	assert_contains "--bogus"
	assert_contains "cpipe run --help"
	[ ! -e .cpipe/volumes/work/data/n ] || fail "something ran"
	run cpipe status -z
	[ "$status" -eq 2 ] || fail "expected exit 2"
	assert_contains "-z"
	assert_contains "cpipe status --help"
	run cpipe run --jobs
	[ "$status" -eq 2 ] || fail "expected exit 2 for a missing argument"
	assert_contains "--jobs"
	assert_contains "needs an argument"
}

@test "config --services, --volumes and --images list names one a line" {
	pipeline
	run cpipe config --services
	[ "$status" -eq 0 ] || fail "config --services failed"
	[ "$output" = $'prepare\ntrain\ninfer' ] || fail "wrong --services"
	run cpipe config --volumes
	[ "$status" -eq 0 ] || fail "config --volumes failed"
	[ "$output" = $'work\ncache' ] || fail "wrong --volumes"
	run cpipe config --images
	[ "$status" -eq 0 ] || fail "config --images failed"
	[ "$output" = $'python:3.12-slim\nbusybox' ] || fail "wrong --images"
}

@test "run --rm and up -d are accepted and change nothing" {
	pipeline
	run cpipe run --rm prepare
	[ "$status" -eq 0 ] || fail "run --rm failed"
	assert_contains "prepared 1"
	printf 'stages:\n  serve:\n    service: true\n    command: sleep 100\n' > up.yml
	run cpipe -f up.yml up -d --dry-run
	[ "$status" -eq 0 ] || fail "up -d failed"
	assert_contains "serve  service"
	assert_contains "$ sleep 100"
}
