#!/usr/bin/env bats
# Every key of the Compose Specification is honoured or accepted with one
# warning (key, file:line, what cpipe does instead); keys outside it are
# errors with a suggestion; x-* is ignored. extends, include, !reset and
# !override keep compose's meaning.

load helpers

SRC="$BATS_TEST_DIRNAME/../.."

compose() {
	cat > "$PROJ/compose.yaml"
}

# The keys of pipeline/compose_keys.c's table `$1` (top_keys, service_keys).
table_keys() {
	sed -n "/^static const struct compose_key $1\[\]/,/^};/p" "$SRC/pipeline/compose_keys.c" |
		grep -oE '^\s*[HWC]\("[a-z_]+"' | grep -oE '"[a-z_]+"' | tr -d '"'
}

@test "the key table has an entry for every top-level and service key of the schema" {
	schema="$SRC/tests/compose-corpus/compose-spec.json"
	missing=""
	for k in $(jq -r '.properties | keys[]' "$schema"); do
		table_keys top_keys | grep -qx "$k" || missing="$missing top:$k"
	done
	for k in $(jq -r '.definitions.service.properties | keys[]' "$schema"); do
		table_keys service_keys | grep -qx "$k" || missing="$missing service:$k"
	done
	[ -z "$missing" ] || fail "not in pipeline/compose_keys.c:$missing"
}

@test "the README's key reference lists every key of the table, with its fate" {
	missing=""
	for t in top_keys service_keys; do
		while read -r fate k; do
			case $fate in H) fate=honoured ;; W) fate=warned ;; C) fate=cpipe ;; esac
			grep -qF "| \`$k\` | $fate |" "$SRC/README.md" || missing="$missing $k($fate)"
		done < <(sed -n "/^static const struct compose_key $t\[\]/,/^};/p" \
			"$SRC/pipeline/compose_keys.c" | sed -nE 's/^\s*([HWC])\("([a-z_]+)".*/\1 \2/p')
	done
	[ -z "$missing" ] || fail "README.md does not list:$missing"
}

@test "a key cpipe does not honour is accepted with one warning: key, file:line, what it does instead" {
	compose <<'EOF'
services:
  train:
    image: x
    command: train
    mem_limit: 8gb
  evaluate:
    image: x
    command: evaluate
    mem_limit: 1gb
    privileged: true
networks:
  default: {}
EOF
	run cpipe config
	[ "$status" -eq 0 ] || fail "exit $status"
	assert_contains "cpipe: warning: compose.yaml:5:5: stage \"train\": mem_limit: cpipe ignores it; the stage runs without that resource limit (also in 1 other stage)"
	assert_contains 'cpipe: warning: compose.yaml:10:5: stage "evaluate": privileged: cpipe ignores it'
	assert_contains 'cpipe: warning: compose.yaml:11:1: networks: cpipe ignores it; the stages share one project network'
	[ "$(grep -c mem_limit <<< "$output")" -eq 1 ] || fail "mem_limit warned more than once"
	# Warnings go to stderr: the printed spec stays clean.
	cpipe config 2>/dev/null | grep -q warning && fail "a warning on stdout"
	# A stage's keys below it too: build and deploy.
	compose <<'EOF'
services:
  train:
    build: {context: ., dockerfile_inline: "FROM scratch"}
    command: train
    deploy: {mode: global}
EOF
	run cpipe config
	[ "$status" -eq 0 ] || fail "exit $status"
	assert_contains 'compose.yaml:3:25: stage "train": build.dockerfile_inline: cpipe ignores it'
	assert_contains 'compose.yaml:5:14: stage "train": deploy.mode: cpipe ignores it; a stage runs once, on this host'
	# And the options of long-form volumes and ports.
	compose <<'EOF'
services:
  train:
    command: train
    volumes:
      - {type: bind, source: ., target: /src, bind: {propagation: rshared}}
    ports:
      - {target: 80, published: "8080", mode: host, app_protocol: http}
EOF
	run cpipe config
	[ "$status" -eq 0 ] || fail "exit $status"
	assert_contains 'compose.yaml:5:54: stage "train": volumes: bind.propagation: cpipe ignores it'
	assert_contains 'compose.yaml:7:53: stage "train": ports: app_protocol: cpipe ignores it'
	refute_contains "ports: mode"
}

@test "a key outside the specification is an error with a suggestion, x-* is ignored" {
	compose <<'EOF'
x-common: &c {image: x}
services:
  train:
    <<: *c
    x-note: anything
    comand: train
EOF
	run cpipe config
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains 'compose.yaml:6:5: stage "train": unknown key "comand" (did you mean "command"?)'
	compose <<'EOF'
service:
  train: {image: x, command: train}
EOF
	run cpipe config
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains 'compose.yaml:1:1: unknown top-level key "service" (did you mean "services"?)'
	compose <<'EOF'
x-common: {image: x}
services:
  train: {image: x, command: train, x-note: anything}
EOF
	run cpipe config
	[ "$status" -eq 0 ] || fail "exit $status"
	refute_contains "warning"
}

@test "extends copies a service of the same file, merged with compose's rules" {
	compose <<'EOF'
services:
  base:
    image: trainer:1
    command: train --epochs 1
    environment: {LR: "0.1", SEED: "1"}
    volumes: [work:/work]
  long:
    extends: base
    command: train --epochs 50
    environment: {LR: "0.01"}
  again:
    extends: {service: long}
volumes:
  work: {}
EOF
	run_ok config --json
	j=$output
	[ "$(jq -c .stages.long.command <<< "$j")" = '["train","--epochs","50"]' ] || fail "command"
	[ "$(jq -c .stages.long.environment <<< "$j")" = '{"LR":"0.01","SEED":"1"}' ] || fail "environment"
	[ "$(jq -r .stages.long.image <<< "$j")" = trainer:1 ] || fail "image"
	[ "$(jq -r '.stages.again.volumes[0].source' <<< "$j")" = work ] || fail "volumes"
	[ "$(jq -c .stages.again.command <<< "$j")" = '["train","--epochs","50"]' ] || fail "chain"
}

@test "extends file: takes the service from another file, its relative paths from there" {
	mkdir -p common/ctx
	touch common/train.env
	cat > common/base.yaml <<'EOF'
services:
  trainer:
    build: ./ctx
    command: train
    env_file: train.env
    volumes: ["./data:/data:ro"]
EOF
	compose <<'EOF'
services:
  train:
    extends: {file: common/base.yaml, service: trainer}
    environment: {A: "1"}
EOF
	run_ok config --json
	[ "$(jq -r .stages.train.build.context <<< "$output")" = "$PROJ/common/ctx" ] || fail "context"
	[ "$(jq -r '.stages.train.volumes[0].source' <<< "$output")" = "$PROJ/common/data" ] || fail "bind"
	[ "$(jq -c .stages.train.command <<< "$output")" = '["train"]' ] || fail "command"
}

@test "extends errors: an unknown service with a suggestion, a cycle" {
	compose <<'EOF'
services:
  base: {image: x, command: a}
  a: {extends: bsae}
EOF
	run cpipe config
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains 'compose.yaml:3:16: stage "a": extends unknown service "bsae" (did you mean "base"?)'
	compose <<'EOF'
services:
  a: {extends: b, command: a}
  b: {extends: a, command: b}
EOF
	run cpipe config
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains "extends cycle"
}

@test "include brings another project's services, with its own directory and .env" {
	mkdir -p db/init
	echo "PGVER=16" > db/.env
	echo "TAG=v2" > tags.env
	cat > db/compose.yaml <<'EOF'
services:
  postgres:
    image: postgres:${PGVER}
    volumes: ["./init:/docker-entrypoint-initdb.d:ro"]
  cache:
    image: redis:${TAG:-none}
EOF
	compose <<'EOF'
include:
  - db/compose.yaml
  - path: db/compose.yaml
    env_file: tags.env
    project_directory: .
services:
  app:
    image: app
    command: run
    depends_on: [postgres]
EOF
	run cpipe config --json
	[ "$status" -eq 2 ] || fail "the same services included twice, with other values, loaded: exit $status"
	assert_contains 'is also defined by the included'
	compose <<'EOF'
include:
  - db/compose.yaml
services:
  app:
    image: app
    command: run
    depends_on: [postgres]
EOF
	run_ok config --json
	[ "$(jq -r .stages.postgres.image <<< "$output")" = postgres:16 ] || fail "its .env"
	[ "$(jq -r '.stages.postgres.volumes[0].source' <<< "$output")" = "$PROJ/db/init" ] || fail "its dir"
	[ "$(jq -r .stages.cache.image <<< "$output")" = redis:none ] || fail "cache"
	compose <<'EOF'
include:
  - path: db/compose.yaml
    env_file: tags.env
    project_directory: .
services:
  app: {image: app, command: run}
EOF
	run_ok config --json
	[ "$(jq -r .stages.cache.image <<< "$output")" = redis:v2 ] || fail "env_file"
	[ "$(jq -r '.stages.postgres.volumes[0].source' <<< "$output")" = "$PROJ/init" ] || fail "project_directory"
}

@test "include errors: a missing file, a cycle" {
	compose <<'EOF'
include: [nowhere.yaml]
services:
  a: {image: x, command: a}
EOF
	run cpipe config
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains 'compose.yaml:1:11: nowhere.yaml not found'
	cat > other.yaml <<'EOF'
include: [compose.yaml]
EOF
	compose <<'EOF'
include: [other.yaml]
services:
  a: {image: x, command: a}
EOF
	run cpipe config
	[ "$status" -eq 2 ] || fail "exit $status"
	assert_contains "include cycle"
}

@test "!reset drops and !override replaces what an earlier file or extended service gave" {
	compose <<'EOF'
services:
  train:
    image: x
    command: train
    ports: ["8000:8000"]
    environment: {A: "1", B: "2"}
  quiet:
    extends: train
    ports: !reset []
EOF
	cat > override.yaml <<'EOF'
services:
  train:
    environment: !override {C: "3"}
    command: !reset null
EOF
	run_ok -f compose.yaml -f override.yaml config --json
	[ "$(jq -c .stages.train.environment <<< "$output")" = '{"C":"3"}' ] || fail "override"
	[ "$(jq -r '.stages.train.command // "none"' <<< "$output")" = none ] || fail "reset command"
	[ "$(jq -r '.stages.quiet.ports // "none"' <<< "$output")" = none ] || fail "reset ports"
	[ "$(jq -r .stages.quiet.service <<< "$output")" = false ] || fail "quiet publishes nothing: a job"
}
