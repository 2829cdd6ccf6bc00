#!/usr/bin/env bats
# Specs cpipe must refuse at load: exit 2, the file:line:col of the cause,
# and nothing written (no .cpipe/) by `cpipe run`.

load helpers

# Runs `cpipe run` on the spec in $PROJ and checks exit 2, the message $1
# and that no state directory appeared.
refused() {
	run cpipe run "${@:2}"
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains "$1"
	[ ! -e "$PROJ/.cpipe" ] || fail ".cpipe/ was created"
}

@test "a 1 MiB string behind 10,000 aliases is refused at the alias that crosses 64 MiB" {
	python3 - > cpipe.yml <<'EOF'
print('x-big: &b "' + 'x' * (1 << 20) + '"')
print('x-list: &l [' + ', '.join(['*b'] * 10000) + ']')
print('stages:\n  a: {command: "true"}')
EOF
	refused 'cpipe.yml:2:261: alias "b" expands the spec past 64 MiB of text, the most cpipe reads from one file'
}

@test "the billion-laughs shape is refused quickly" {
	python3 - > cpipe.yml <<'EOF'
print('x-a: &a ["' + 'lol' * 100 + '"' + ', "lol"' * 9 + ']')
prev = 'a'
for c in 'bcdefghij':
    print(f'x-{c}: &{c} [' + ', '.join([f'*{prev}'] * 9) + ']')
    prev = c
print('stages:\n  a: {command: "true"}')
EOF
	refused 'alias "'
	assert_contains "the most cpipe reads from one file once aliases and \"<<\" merge keys are expanded"
}

@test "merge keys count toward the cap too" {
	python3 - > cpipe.yml <<'EOF'
print('x-m: &m {k: "' + 'y' * (1 << 20) + '"}')
for i in range(80):
    print(f'x-{i}: {{<<: *m}}')
print('stages:\n  a: {command: "true"}')
EOF
	refused 'past 64 MiB of text'
}

@test "a stage without a command on the local runtime is refused at its line" {
	spec <<'EOF'
stages:
  ok: {command: "true"}
  empty:
    image: busybox
EOF
	refused 'cpipe.yml:3:3: stage "empty" has no command, and the local runtime runs commands, not images; add "command: ..." to the stage'
	printf 'stages:\n  a: {command: ""}\n' > cpipe.yml
	refused 'cpipe.yml:2:3: stage "a" has no command'
	refused 'cpipe.yml:2:3: stage "a" has no command' --dry-run
}

@test "an empty, comment-only or stage-less spec says no stages are defined" {
	: > cpipe.yml
	refused 'cpipe: cpipe.yml: no stages defined; add a `stages:` (or `services:`) map'
	echo '# nothing yet' > cpipe.yml
	refused 'cpipe.yml: no stages defined'
	echo 'name: demo' > cpipe.yml
	refused 'cpipe.yml: no stages defined'
	echo 'services: {}' > cpipe.yml
	refused 'cpipe.yml:1:11: no stages defined'
}

@test "two stages publishing one host port are refused" {
	spec <<'EOF'
stages:
  a: {command: "true", ports: ["8000:80"]}
  b: {command: "true", ports: ["8000:81"]}
EOF
	refused 'cpipe.yml:3:32: stage "b": host port 8000/tcp on 127.0.0.1 is already published by stage "a" (cpipe.yml:2:32)'
}

@test "depends_on naming a stage twice is refused" {
	spec <<'EOF'
stages:
  b: {command: "true"}
  a: {command: "true", depends_on: [b, b]}
EOF
	refused 'cpipe.yml:3:40: stage "a": depends on "b" twice'
}

@test "a host IP that is no address is refused" {
	spec <<'EOF'
stages:
  a: {command: "true", ports: ["999.1.2.3:8000:80"]}
EOF
	refused 'cpipe.yml:2:32: stage "a": port "999.1.2.3:8000:80": host IP "999.1.2.3" is not an IPv4 or IPv6 address'
}

@test "gpus: lots is refused" {
	spec <<'EOF'
stages:
  a: {command: "true", gpus: lots}
EOF
	refused 'cpipe.yml:2:30: stage "a": gpus "lots" is not "all", a number of GPUs or "device=ID[,ID...]"'
}

@test "stage names follow compose's rule and fit a log file name" {
	spec <<'EOF'
stages:
  _hidden: {command: "true"}
EOF
	refused 'cpipe.yml:2:3: invalid stage name "_hidden"'
	printf 'stages:\n  %s: {command: "true"}\n' "$(printf 'n%.0s' {1..201})" > cpipe.yml
	refused 'cpipe.yml:2:3: stage name "nnnnnnnnnnnnnnnnnnnn..." is 201 characters long; cpipe names log files after stages and allows at most 200'
	printf 'stages:\n  %s: {command: "true"}\n' "$(printf 'n%.0s' {1..200})" > cpipe.yml
	run cpipe run
	[ "$status" -eq 0 ] || fail "a 200-character name should run"
	ls .cpipe/logs/*/"$(printf 'n%.0s' {1..200})".log || fail "no log for the long name"
}

@test "-C naming a file says it is not a directory" {
	spec <<'EOF'
stages:
  a: {command: "true"}
EOF
	run cpipe -C cpipe.yml run
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains "-C cpipe.yml: not a directory"
	[ ! -e "$PROJ/.cpipe" ] || fail ".cpipe/ was created"
	[ ! -e "$PROJ/cpipe.yml/.cpipe" ] || fail ".cpipe/ was created"
}

@test "invalid UTF-8 is reported at the bad byte" {
	printf 'stages:\n  a:\n    command: "caf\xc3\xa9 \xff"\n' > cpipe.yml
	refused 'cpipe.yml:3:20: invalid leading UTF-8 octet (byte 0xff): the spec must be UTF-8 text'
}

@test "a 50,000-stage depends_on chain loads, plans and dry-runs" {
	python3 - > cpipe.yml <<'EOF'
print('stages:')
for i in range(50000):
    print(f'  s{i}:\n    command: "true"')
    if i:
        print(f'    depends_on: [s{i - 1}]')
EOF
	run timeout 60 "$CPIPE_BIN" config --json
	[ "$status" -eq 0 ] || fail "config failed: $status"
	run timeout 60 "$CPIPE_BIN" run --dry-run s49999
	[ "$status" -eq 0 ] || fail "dry-run failed: $status"
	[ "$(grep -c '^s[0-9]*  *run ' <<< "$output")" -eq 50000 ] || fail "expected 50000 planned stages"
	[ "${lines[0]%% *}" = s0 ] || fail "first planned stage is not s0"
	[ "$(grep -v '^ ' <<< "$output" | tail -1 | cut -d' ' -f1)" = s49999 ] ||
		fail "last planned stage is not s49999"
}
