#!/usr/bin/env bats
# Compose's environment and files: -p / COMPOSE_PROJECT_NAME (also from
# .env), COMPOSE_FILE with its separator (also from .env), COMPOSE_PROFILES,
# --env-file (repeatable), --project-directory, override files merged when
# no -f is given, and the warning for an unset variable.

load helpers

unset COMPOSE_PROJECT_NAME COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PATH_SEPARATOR

# A compose file whose one stage writes what it was given into a volume.
compose_file() {
	cat > compose.yaml <<'EOF2'
services:
  job:
    command: sh -c 'echo "say=${SAY:-nothing}" | tee /v/said'
    volumes: [data:/v]
volumes:
  data: {}
EOF2
}

@test "compose.override.yaml is merged over compose.yaml when no -f is given" {
	compose_file
	cat > compose.override.yaml <<'EOF2'
services:
  job:
    environment: {FROM_OVERRIDE: "yes"}
EOF2
	run_ok config
	assert_contains 'FROM_OVERRIDE: "yes"'
	# Given -f, only the files named are read.
	run_ok -f compose.yaml config
	refute_contains "FROM_OVERRIDE"
}

@test "docker-compose.override.yml goes with docker-compose.yml" {
	compose_file
	mv compose.yaml docker-compose.yml
	printf 'services:\n  job:\n    working_dir: /v\n' > docker-compose.override.yml
	run_ok config
	assert_contains "working_dir: /v"
}

@test "-p names the project: its state, volumes and runs are its own" {
	compose_file
	run_ok -p alpha run job
	[ -f .cpipe/projects/alpha/volumes/data/said ] || fail "alpha's volume is not under .cpipe/projects/alpha"
	[ ! -e .cpipe/volumes/data ] || fail "the default project's volume was written"
	run_ok -p alpha config
	assert_contains "name: alpha"
	# The default project (the directory's name) has no run yet.
	run cpipe runs
	refute_contains "succeeded"
	run_ok run job -p alpha
	run_ok runs -p alpha
	assert_contains "succeeded"
}

@test "-p refuses a .cpipe/projects that is a symlink, writing nothing through it" {
	compose_file
	mkdir -p .cpipe outside
	ln -s "$PROJ/outside" .cpipe/projects
	run cpipe -p alpha run job
	[ "$status" -eq 2 ] || fail "a symlinked .cpipe/projects exited $status"
	assert_contains ".cpipe/projects is not a directory"
	[ -z "$(ls -A outside)" ] || fail "something was written through the symlink"
}

@test "COMPOSE_PROJECT_NAME from the environment or .env names the project; -p wins" {
	compose_file
	echo COMPOSE_PROJECT_NAME=fromdotenv > .env
	run_ok config
	assert_contains "name: fromdotenv"
	COMPOSE_PROJECT_NAME=fromenv run cpipe config
	assert_contains "name: fromenv"
	COMPOSE_PROJECT_NAME=fromenv run cpipe -p fromflag config
	assert_contains "name: fromflag"
	run cpipe -p Bad.Name config
	[ "$status" -eq 2 ] || fail "a bad project name exited $status"
	assert_contains 'project name "Bad.Name" must be lowercase'
}

@test "COMPOSE_FILE lists the files, split at COMPOSE_PATH_SEPARATOR, also from .env" {
	mkdir conf
	compose_file
	mv compose.yaml conf/base.yml
	printf 'services:\n  job:\n    environment: {LAYER: two}\n' > conf/two.yml
	COMPOSE_FILE=conf/base.yml:conf/two.yml run cpipe config
	[ "$status" -eq 0 ] || fail "config with COMPOSE_FILE exited $status"
	assert_contains "LAYER: two"
	COMPOSE_PATH_SEPARATOR=, COMPOSE_FILE=conf/base.yml,conf/two.yml run cpipe config
	assert_contains "LAYER: two"
	echo COMPOSE_FILE=conf/base.yml > .env
	run_ok config
	assert_contains "say="
	refute_contains "LAYER"
	COMPOSE_FILE=conf/missing.yml run cpipe config
	[ "$status" -eq 2 ] || fail "a missing COMPOSE_FILE exited $status"
	assert_contains "conf/missing.yml not found"
}

@test "COMPOSE_PROFILES from .env enables a profile's stages" {
	cat > compose.yaml <<'EOF2'
services:
  base:
    command: echo base-ran
  extra:
    command: echo extra-ran
    profiles: [debug]
EOF2
	run_ok run
	refute_contains "extra-ran"
	echo COMPOSE_PROFILES=debug > .env
	run_ok run
	assert_contains "extra-ran"
}

@test "--env-file replaces .env; repeated, later files win; a missing one fails" {
	compose_file
	echo SAY=dotenv > .env
	echo SAY=first > one.env
	echo SAY=second > two.env
	run_ok run job
	assert_contains "say=dotenv"
	run_ok --env-file one.env run job
	assert_contains "say=first"
	run_ok run job --env-file one.env --env-file two.env
	assert_contains "say=second"
	run cpipe --env-file nope.env config
	[ "$status" -eq 2 ] || fail "a missing --env-file exited $status"
	assert_contains "nope.env"
}

@test "--project-directory points at the project from elsewhere" {
	mkdir -p elsewhere/app
	cd elsewhere/app
	compose_file
	echo SAY=fromapp > .env
	cd "$PROJ"
	run_ok --project-directory elsewhere/app run job
	assert_contains "say=fromapp"
	[ -f elsewhere/app/.cpipe/volumes/data/said ] || fail "state is not in the project directory"
}

@test "an unset variable warns once, naming it and where, and becomes empty" {
	spec <<'EOF2'
stages:
  a:
    command: echo "[${NOT_SET_ANYWHERE}]"
  b:
    command: echo "[$NOT_SET_ANYWHERE] [${WITH_DEFAULT:-dflt}] [${EMPTY_OK-}]"
EOF2
	run_ok run
	assert_contains "a | []"
	assert_contains "b | [] [dflt] []"
	[ "$(grep -c 'NOT_SET_ANYWHERE' <<< "$output")" -eq 1 ] || fail "expected exactly one warning"
	assert_contains 'cpipe.yml:3:14: the "NOT_SET_ANYWHERE" variable is not set; defaulting to a blank string'
	refute_contains "WITH_DEFAULT"
	refute_contains '"EMPTY_OK"'
	NOT_SET_ANYWHERE=now run cpipe run a
	refute_contains "not set"
}
