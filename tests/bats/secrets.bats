#!/usr/bin/env bats
# Secrets on the local runtime: a value fed by a secret-looking variable,
# by top-level secrets: or sitting in a URL's password is masked wherever
# cpipe records or prints it, never enters a cache key, and what cpipe
# keeps under .cpipe is the owner's alone.

load helpers

TOKEN_A=tok-first-a1b2c3d4
TOKEN_B=tok-second-e5f6a7b8

last_record() {
	ls "$PROJ"/.cpipe/runs/*.json | sort | tail -1
}

# A command line that carries a host token and echoes it, a URL with a
# password in the environment, and a declared output so the stage can be
# skipped.
token_spec() {
	spec <<'EOF2'
volumes:
  w: {}
stages:
  fetch:
    command: sh -c 'echo "auth=$$2 db=$$DATABASE_URL"; mkdir -p /w && echo data > /w/out' fetch --auth ${HOST_API_TOKEN}
    environment:
      DATABASE_URL: postgres://u:hunter2@db/x
      MODE: fast
    volumes: [w:/w]
    outputs: [w:/out]
EOF2
}

no_secret_under() {
	local hits
	hits=$(grep -rl -e "$TOKEN_A" -e "$TOKEN_B" -e hunter2 "$@" 2>/dev/null || true)
	[ -z "$hits" ] || fail "secret written to: $hits"
}

@test "a host token interpolated into a command reaches neither the lock nor the record" {
	token_spec
	HOST_API_TOKEN=$TOKEN_A run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	no_secret_under cpipe.lock .cpipe
	jq -e '.stages.fetch.command | index("<redacted>")' cpipe.lock >/dev/null || fail "lock command not masked"
	jq -e '.stages[0].command[-1] == "<redacted>" and .stages[0].command[-2] == "--auth"' "$(last_record)" >/dev/null ||
		fail "record command not masked: $(jq -c '.stages[0].command' "$(last_record)")"
	jq -e '.stages[0].environment.MODE == "fast" and .stages[0].environment.DATABASE_URL == "postgres://u:<redacted>@db/x"' \
		"$(last_record)" >/dev/null || fail "record environment: $(jq -c '.stages[0].environment' "$(last_record)")"
}

@test "a rotated token does not make the stage stale" {
	token_spec
	HOST_API_TOKEN=$TOKEN_A cpipe run >/dev/null 2>&1
	HOST_API_TOKEN=$TOKEN_B run cpipe status --check
	[ "$status" -eq 0 ] || fail "stale after rotating the token"
	HOST_API_TOKEN=$TOKEN_B run cpipe run
	[ "$status" -eq 0 ] || fail "second run failed"
	assert_contains "fetch is up to date, skipped"
	no_secret_under cpipe.lock .cpipe
	# A change that is not secret still counts.
	sed -i 's/MODE: fast/MODE: slow/' cpipe.yml
	HOST_API_TOKEN=$TOKEN_B run cpipe status
	assert_contains "environment MODE changed"
}

@test "a token the stage prints is masked on the terminal and in its log" {
	token_spec
	HOST_API_TOKEN=$TOKEN_A run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	assert_contains "fetch | auth=<redacted> db=postgres://u:<redacted>@db/x"
	refute_contains "$TOKEN_A"
	refute_contains hunter2
	log=$(ls .cpipe/logs/*/fetch.log)
	grep -q "auth=<redacted>" "$log" || fail "log: $(cat "$log")"
	no_secret_under .cpipe/logs
}

@test "status, show, runs, prov and logs print no secret" {
	token_spec
	HOST_API_TOKEN=$TOKEN_A cpipe run >/dev/null 2>&1
	for verb in "status" "show latest" "runs" "prov latest" "logs fetch" "--json show latest" "--json status"; do
		# shellcheck disable=SC2086
		HOST_API_TOKEN=$TOKEN_A run cpipe $verb
		[ "$status" -eq 0 ] || fail "cpipe $verb failed"
		refute_contains "$TOKEN_A" || return 1
		refute_contains hunter2 || return 1
	done
}

@test "cpipe config masks secrets unless --no-redact" {
	token_spec
	cat >> cpipe.yml <<'EOF2'
  deploy:
    command: push
    environment:
      API_KEY: key-zyxw-9876
      PATH: /usr/local/bin:/usr/bin:/bin
      TOKENIZERS_PARALLELISM: "false"
EOF2
	HOST_API_TOKEN=$TOKEN_A run cpipe config
	[ "$status" -eq 0 ] || fail "config failed"
	refute_contains "$TOKEN_A"
	refute_contains hunter2
	refute_contains key-zyxw-9876
	assert_contains "API_KEY: <redacted>"
	assert_contains "postgres://u:<redacted>@db/x"
	assert_contains "PATH: /usr/local/bin:/usr/bin:/bin"
	assert_contains 'TOKENIZERS_PARALLELISM: "false"'
	HOST_API_TOKEN=$TOKEN_A run cpipe --json config
	[ "$status" -eq 0 ] || fail "config --json failed"
	echo "$output" | jq -e '.stages.deploy.environment.API_KEY == "<redacted>" and (.stages.fetch.command | index("<redacted>"))' >/dev/null ||
		fail "json not masked"
	HOST_API_TOKEN=$TOKEN_A run cpipe config --no-redact
	[ "$status" -eq 0 ] || fail "config --no-redact failed"
	assert_contains "$TOKEN_A"
	assert_contains key-zyxw-9876
	assert_contains "postgres://u:hunter2@db/x"
}

@test "values named by top-level secrets: are never recorded" {
	printf 'file-secret-0042\n' > token.txt
	spec <<'EOF2'
secrets:
  deploy_thing: {environment: DEPLOY_THING}
  token_file: {file: ./token.txt}
volumes:
  w: {}
stages:
  push:
    command: sh -c 'echo pushing ${DEPLOY_THING}; cat /in/token.txt; mkdir -p /w && echo ok > /w/out'
    volumes: [w:/w, ./token.txt:/in/token.txt:ro]
    outputs: [w:/out]
EOF2
	DEPLOY_THING=plain-looking-value run cpipe run
	[ "$status" -eq 0 ] || fail "run failed"
	refute_contains plain-looking-value
	refute_contains file-secret-0042
	assert_contains "push | pushing <redacted>"
	hits=$(grep -rl -e plain-looking-value -e file-secret-0042 .cpipe cpipe.lock || true)
	[ -z "$hits" ] || fail "secret written to: $hits"
	DEPLOY_THING=another-value-77 run cpipe run
	assert_contains "push is up to date, skipped"
}

@test "an env_file line that cannot be parsed is not echoed" {
	printf 'GOOD=1\nghp_S3cr3tT0k3nValue!x\n' > app.env
	spec <<'EOF2'
stages:
  a:
    command: "true"
    env_file: app.env
EOF2
	run cpipe config
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains "app.env:2:"
	assert_contains "invalid variable name"
	refute_contains "S3cr3t"
}

@test ".cpipe and what cpipe writes under it are the owner's only; cpipe.lock stays 0644" {
	token_spec
	HOST_API_TOKEN=$TOKEN_A cpipe run >/dev/null 2>&1
	[ "$(stat -c %a .cpipe)" = 700 ] || fail ".cpipe is $(stat -c %a .cpipe)"
	for d in .cpipe/runs .cpipe/logs .cpipe/logs/* .cpipe/cache; do
		[ "$(stat -c %a "$d")" = 700 ] || fail "$d is $(stat -c %a "$d")"
	done
	for f in .cpipe/runs/*.json .cpipe/logs/*/fetch.log .cpipe/cache/*; do
		[ "$(stat -c %a "$f")" = 600 ] || fail "$f is $(stat -c %a "$f")"
	done
	[ "$(stat -c %a cpipe.lock)" = 644 ] || fail "cpipe.lock is $(stat -c %a cpipe.lock)"
	# A project an older cpipe left world-readable is tightened.
	chmod 755 .cpipe
	HOST_API_TOKEN=$TOKEN_A cpipe status >/dev/null 2>&1
	[ "$(stat -c %a .cpipe)" = 700 ] || fail ".cpipe left at $(stat -c %a .cpipe)"
}

@test "--dry-run and a failing stage's error print no secret" {
	token_spec
	HOST_API_TOKEN=$TOKEN_A run cpipe run --dry-run
	[ "$status" -eq 0 ] || fail "dry run failed"
	assert_contains "--auth <redacted>"
	refute_contains "$TOKEN_A"
	spec <<'EOF2'
stages:
  svc:
    service: true
    command: sh -c 'echo "svc got ${HOST_API_TOKEN}"; exit 3'
  client:
    command: "true"
    depends_on: {svc: {condition: service_started}}
EOF2
	HOST_API_TOKEN=$TOKEN_A run cpipe run
	[ "$status" -ne 0 ] || fail "the service's exit went unnoticed"
	refute_contains "$TOKEN_A"
}

@test "cpipe logs masks a secret a service wrote to its own log" {
	spec <<'EOF2'
stages:
  svc:
    service: true
    command: sh -c 'echo "svc got ${HOST_API_TOKEN}"; exec sleep 30'
EOF2
	HOST_API_TOKEN=$TOKEN_A run cpipe up svc
	[ "$status" -eq 0 ] || fail "up failed"
	sleep 0.5
	HOST_API_TOKEN=$TOKEN_A run cpipe logs svc
	HOST_API_TOKEN=$TOKEN_A cpipe down >/dev/null 2>&1
	assert_contains "svc got <redacted>"
	refute_contains "$TOKEN_A"
}

@test "a spec error quoting a value fed by a secret does not print it" {
	spec <<'EOF2'
stages:
  a:
    command: "true"
    ports: ["${HOST_API_TOKEN}"]
EOF2
	HOST_API_TOKEN=$TOKEN_A run cpipe config
	[ "$status" -eq 2 ] || fail "expected exit 2, got $status"
	assert_contains 'cpipe.yml:4:'
	assert_contains 'port "<redacted>"'
	refute_contains "$TOKEN_A"
	# A URL's password is masked too, whatever the name around it.
	spec <<'EOF2'
stages:
  a:
    command: "true"
    healthcheck: {http: "ftp://u:pw-hidden-1@h/x"}
    service: true
EOF2
	run cpipe config
	refute_contains pw-hidden-1
}
