#!/usr/bin/env bats
# Real compose files (tests/compose-corpus, sources in SOURCES.md) load in
# cpipe, and cpipe reads them as Debian's docker-compose does wherever
# docker-compose accepts them.

load helpers

CORPUS="$BATS_TEST_DIRNAME/../compose-corpus"

setup() {
	PROJ="$BATS_TEST_TMPDIR/corpus"
	cp -a "$CORPUS" "$PROJ"
	cd "$PROJ" || return 1
}

# Both tools see the same, bare environment: the files' own defaults and
# .env files decide, not the shell running the tests.
bare() {
	env -i PATH="$PATH" HOME="$HOME" "$@"
}

entries() {
	grep -v '^#' "$PROJ/MANIFEST"
}

@test "the corpus holds at least 30 real compose files, each with its source" {
	n=$(entries | wc -l)
	[ "$n" -ge 30 ] || fail "only $n files in MANIFEST"
	while IFS=$'\t' read -r dir file _; do
		[ -f "$PROJ/$dir/$file" ] || fail "$dir/$file missing"
		grep -q "^| $dir |" "$PROJ/SOURCES.md" || fail "$dir has no line in SOURCES.md"
	done < <(entries)
}

@test "every file of the corpus loads" {
	bad=""
	while IFS=$'\t' read -r dir file _; do
		if ! (cd "$dir" && bare "$CPIPE_BIN" -f "$file" config --json >/dev/null 2>err); then
			bad="$bad$dir: $(cat "$dir/err")"$'\n'
		fi
	done < <(entries)
	[ -z "$bad" ] || fail "not loaded:"$'\n'"$bad"
}

@test "cpipe config agrees with docker-compose config on every file both accept" {
	command -v docker-compose >/dev/null || fail "docker-compose is not installed (make deps)"
	compared=0 diffs=""
	while IFS=$'\t' read -r dir file why; do
		[ "$why" = yes ] || continue
		(cd "$dir" && bare docker-compose -f "$file" config >dc.yml 2>/dev/null) || continue
		(cd "$dir" && bare "$CPIPE_BIN" -f "$file" config --json --no-redact >cp.json 2>/dev/null) ||
			{ diffs="$diffs$dir: cpipe failed"$'\n'; continue; }
		out=$(python3 "$PROJ/compare.py" "$dir/$file" "$dir/cp.json" "$dir/dc.yml") ||
			diffs="$diffs$out"$'\n'
		compared=$((compared + 1))
	done < <(entries)
	[ -z "$diffs" ] || fail "cpipe and docker-compose differ:"$'\n'"$diffs"
	[ "$compared" -ge 30 ] || fail "only $compared files compared"
}

@test "the example's docker-compose.yml reads as docker-compose reads it" {
	ex="$BATS_TEST_DIRNAME/../../examples/catgif"
	cp -a "$ex/docker-compose.yml" "$ex/Dockerfile" "$PROJ/"
	bare docker-compose -f docker-compose.yml config >dc.yml
	bare "$CPIPE_BIN" -f docker-compose.yml config --json --no-redact >cp.json
	run python3 "$PROJ/compare.py" docker-compose.yml cp.json dc.yml
	[ "$status" -eq 0 ] || fail "differs"
}

@test "the comparison fails when cpipe reads a field differently" {
	# The comparator itself: a command cpipe would split otherwise is caught.
	dir=awesome-portainer
	cd "$dir"
	bare docker-compose -f compose.yaml config >dc.yml
	bare "$CPIPE_BIN" -f compose.yaml config --json --no-redact >cp.json
	sed -i 's#unix:///var/run/docker.sock#unix:///elsewhere#' cp.json
	run python3 "$PROJ/compare.py" compose.yaml cp.json dc.yml
	[ "$status" -eq 1 ] || fail "a changed command went unnoticed"
	assert_contains "portainer: command"
}
