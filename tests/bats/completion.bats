#!/usr/bin/env bats
# Shell completion and man pages: what `make install` puts under PREFIX,
# used the way bash, zsh, fish and man use it. The scripts and cpipe(1)'s
# commands are generated from cpipe's command and option tables.

load helpers

setup_file() {
	local repo bdir build
	repo=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	bdir=$(cd "$(dirname "$CPIPE_BIN")" && pwd)
	if [ "$bdir" = "$repo" ]; then build=build; else build=${bdir#"$repo"/}; fi
	export P="$BATS_FILE_TMPDIR/prefix"
	make -C "$repo" -s --no-print-directory install PREFIX="$P" BUILD="$build" \
		>"$BATS_FILE_TMPDIR/make.log" 2>&1 || { cat "$BATS_FILE_TMPDIR/make.log" >&3; return 1; }
	# The scripts run `cpipe` at completion time: the installed one.
	export PATH="$P/bin:$PATH"
	export OTHER="$BATS_FILE_TMPDIR/other"
	mkdir -p "$OTHER"
	printf 'volumes:\n  work: {}\nstages:\n  evaluate:\n    command: "true"\n' > "$OTHER/cpipe.yml"
}

setup() {
	PROJ="$BATS_TEST_TMPDIR/proj"
	mkdir -p "$PROJ"
	cd "$PROJ" || return 1
	printf 'stages:\n  prepare:\n    command: "true"\n  train:\n    command: "true"\n' > cpipe.yml
}

# What bash completes for the words given, the last being the one completed.
bash_complete() {
	bash --norc -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _cpipe
		printf "%s\n" "${COMPREPLY[@]}"' _ "$P/share/bash-completion/completions/cpipe" "$@"
}

# What zsh completes, autoloading _cpipe from the installed directory as a
# user's fpath does (compadd and _describe report instead of completing).
zsh_complete() {
	zsh -fc 'fpath=("$1" $fpath); autoload -U compinit; compinit -u -d "$2"; shift 2
		[[ $_comps[cpipe] == _cpipe ]] || { echo "cpipe has no completion" >&2; exit 1; }
		compadd() { print -rl -- ${(M)${@:#-*}:#$PREFIX*}; }
		_describe() { print -rl -- ${(M)${${(P)${@[-1]}}%%:*}:#$PREFIX*}; }
		_files() { print -r -- FILES; }
		words=("$@"); CURRENT=$#; PREFIX=$words[-1]; _cpipe' \
		_ "$P/share/zsh/vendor-completions" "$BATS_TEST_TMPDIR/zcompdump" "$@"
}

# What an interactive zsh shows after LINE and one TAB, driven through a
# pseudo-terminal (zpty) with the installed _cpipe on its fpath.
zsh_tab() {
	timeout 60 zsh -fc 'zmodload zsh/zpty
		zpty z zsh -f -i
		zpty -w z "PS1=\"%% \"; fpath=(${(q)1} \$fpath); autoload -U compinit; compinit -u -d ${(q)2}"
		zpty -w -n z "$3"$'"'"'\t'"'"'
		# Until what the completion should show is there (at most 20 s:
		# compinit and cpipe may be slow on a loaded machine), then Ctrl-C.
		out=
		for i in {1..200}; do
			while zpty -r -t z chunk; do out+=$chunk; done
			[[ ${out//$'"'"'\e'"'"'\[[0-9;?]#[A-Za-z]/} == *$4* ]] && break
			sleep 0.1
		done
		zpty -w -n z $'"'"'\003'"'"'
		sleep 0.2
		zpty -w z "echo END-OF""-TEST"
		while zpty -r -t z chunk || sleep 0.1; do out+=$chunk; chunk=; [[ $out == *END-OF-TEST* ]] && break; (( ++n > 200 )) && break; done
		zpty -d z
		print -r -- ${out//$'"'"'\e'"'"'\[[0-9;?]#[A-Za-z]/}' \
		_ "$P/share/zsh/vendor-completions" "$BATS_TEST_TMPDIR/zcompdump-tty" "$1" "$2"
}

# What fish completes for a command line, loading the installed script from
# fish's completion path as fish does.
fish_complete() {
	fish -c 'set fish_complete_path $argv[1] $fish_complete_path; complete -C $argv[2]' \
		"$P/share/fish/vendor_completions.d" "$1" | cut -f1
}

@test "make install puts the binary, both man pages and the three completions under PREFIX" {
	for f in bin/cpipe share/man/man1/cpipe.1 share/man/man5/cpipe.yml.5 \
		share/bash-completion/completions/cpipe share/zsh/vendor-completions/_cpipe \
		share/fish/vendor_completions.d/cpipe.fish; do
		[ -s "$P/$f" ] || fail "$P/$f not installed"
	done
	[ -x "$P/bin/cpipe" ]
	run "$P/bin/cpipe" completion bash
	[ "$status" -eq 0 ]
	[ "$output" = "$(cat "$P/share/bash-completion/completions/cpipe")" ]
}

@test "bash completes verbs, a verb's options and the spec's stage names" {
	run bash_complete cpipe stat
	[ "$status" -eq 0 ]
	[ "$output" = status ]
	run bash_complete cpipe run --no-d
	[ "$output" = --no-deps ]
	run bash_complete cpipe run tr
	[ "$output" = train ]
	run bash_complete cpipe status ""
	[ "$output" = "$(printf 'prepare\ntrain')" ]
	run bash_complete cpipe up --det
	[ "$output" = --detach ]
}

@test "bash: stage names come from the spec that -f/-C on the line select" {
	run bash_complete cpipe -C "$OTHER" run ""
	[ "$output" = evaluate ]
	run bash_complete cpipe run -C "$OTHER" ""
	[ "$output" = evaluate ]
	run bash_complete cpipe --project-directory="$OTHER" status ""
	[ "$output" = evaluate ]
	run bash_complete cpipe -f "$OTHER/cpipe.yml" logs ""
	[ "$output" = evaluate ]
	# after logs, -f is its own --follow, which takes no argument
	run bash_complete cpipe logs -f ""
	[ "$output" = "$(printf 'prepare\ntrain')" ]
}

@test "bash completes subcommands, option values and volume names" {
	run bash_complete cpipe volume ""
	[ "$output" = "$(printf 'ls\ninspect\nrm\nprune')" ]
	run bash_complete cpipe -C "$OTHER" volume rm ""
	[ "$output" = work ]
	run bash_complete cpipe graph --format ""
	[ "$output" = "$(printf 'dot\nmermaid')" ]
	run bash_complete cpipe run --runtime d
	[ "$output" = docker ]
	run bash_complete cpipe completion ""
	[ "$output" = "$(printf 'bash\nzsh\nfish')" ]
	run bash_complete cpipe help co
	[ "$output" = "$(printf 'config\ncompletion')" ]
	run bash_complete cpipe nosuchverb ""
	[ "$output" = "" ]
}

@test "bash offers every verb of cpipe help" {
	run bash_complete cpipe ""
	local offered=$output
	run cpipe help
	local verb
	for verb in $(printf '%s\n' "$output" | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'); do
		grep -qx -- "$verb" <<<"$offered" || fail "bash does not complete $verb"
	done
	[ "$(wc -l <<<"$offered")" -ge 18 ]
}

@test "zsh autoloads _cpipe from vendor-completions and completes verbs, options, stages" {
	run zsh_complete cpipe stat
	[ "$status" -eq 0 ] || fail "zsh failed"
	[ "$output" = status ]
	run zsh_complete cpipe run --no-d
	[ "$output" = --no-deps ]
	run zsh_complete cpipe run tr
	[ "$output" = train ]
	run zsh_complete cpipe -C "$OTHER" run ""
	[ "$output" = evaluate ]
	run zsh_complete cpipe graph --format ""
	[ "$output" = "$(printf 'dot\nmermaid')" ]
	run zsh_complete cpipe -f ""
	[ "$output" = FILES ]
}

@test "zsh at a terminal: TAB lists the spec's stages and completes a verb" {
	run zsh_tab "cpipe run " train
	[ "$status" -eq 0 ] || fail "zsh did not answer"
	assert_contains prepare
	assert_contains train
	run zsh_tab "cpipe graph --format " mermaid
	assert_contains dot
	assert_contains mermaid
	run zsh_tab "cpipe stat" "cpipe status"
	assert_contains "cpipe status"
}

@test "zsh: the script sourced after compinit loads without error and registers _cpipe" {
	run zsh -fc 'autoload -U compinit; compinit -u -d "$2"; source "$1" || exit 1
		(( $+functions[_cpipe] )) && [[ $_comps[cpipe] == _cpipe ]]' \
		_ "$P/share/zsh/vendor-completions/_cpipe" "$BATS_TEST_TMPDIR/zcompdump"
	[ "$status" -eq 0 ] || fail "zsh could not source the script"
	[ "$output" = "" ]
}

@test "fish completes verbs, options, stages and option values" {
	run fish_complete "cpipe stat"
	[ "$status" -eq 0 ]
	[ "$output" = status ]
	run fish_complete "cpipe run --no-d"
	[ "$output" = --no-deps ]
	run fish_complete "cpipe run tr"
	[ "$output" = train ]
	run fish_complete "cpipe -C $OTHER run "
	[ "$output" = evaluate ]
	run fish_complete "cpipe graph --format "
	[ "$output" = "$(printf 'dot\nmermaid')" ]
	run fish -c 'source $argv[1]; complete -C "cpipe vol"' "$P/share/fish/vendor_completions.d/cpipe.fish"
	[ "$(cut -f1 <<<"$output")" = volume ]
	[[ "$output" == *"manage the project's volumes"* ]]
}

@test "man -l renders cpipe(1) with every verb of cpipe help and its options" {
	run man -l "$P/share/man/man1/cpipe.1"
	[ "$status" -eq 0 ]
	local page=$output
	for s in NAME SYNOPSIS COMMANDS "GLOBAL OPTIONS" "EXIT STATUS" ENVIRONMENT FILES; do
		grep -qx -- "$s" <<<"$page" || fail "no section $s"
	done
	run cpipe help
	local verb n=0
	for verb in $(printf '%s\n' "$output" | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'); do
		grep -qx -- "   $verb" <<<"$page" || fail "cpipe(1) has no section for $verb"
		grep -q -- "cpipe $verb \[OPTIONS\]" <<<"$page" || fail "cpipe(1) has no usage of $verb"
		n=$((n + 1))
	done
	[ "$n" -ge 18 ]
	for o in --no-deps --keep-serving --check --no-redact "--format dot|mermaid" "--runtime local|docker" \
		CPIPE_RUNTIME DOCKER_HOST cpipe.lock .cpipe/; do
		grep -qF -- "$o" <<<"$page" || fail "cpipe(1) lacks $o"
	done
	run groff -man -ww -z "$P/share/man/man1/cpipe.1"
	[ "$output" = "" ] || fail "groff warns"
}

@test "man -l renders cpipe.yml(5) with the spec's keys" {
	run man -l "$P/share/man/man5/cpipe.yml.5"
	[ "$status" -eq 0 ]
	for k in stages volumes secrets runtime command depends_on params inputs outputs metrics \
		healthcheck service_healthy "cpipe.yml:3:5"; do
		grep -qF -- "$k" <<<"$output" || fail "cpipe.yml(5) lacks $k"
	done
	run groff -man -ww -z "$P/share/man/man5/cpipe.yml.5"
	[ "$output" = "" ] || fail "groff warns"
}

@test "cpipe completion of an unknown shell, or none, is a usage error" {
	run cpipe completion tcsh
	[ "$status" -eq 2 ]
	assert_contains 'use bash, zsh or fish'
	run cpipe completion
	[ "$status" -eq 2 ]
	run cpipe help --man run
	[ "$status" -eq 2 ]
}
