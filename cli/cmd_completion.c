/* cpipe completion bash|zsh|fish: a completion script generated from the
 * command table (cli/main.c) and the verbs' option tables (cli/opts.c), so
 * that a new verb or option completes without anyone editing a script.
 *
 * What each shell gets, per context ("" before the verb, else the verb):
 * the options (verb's, then the global ones whose letter it does not
 * shadow), the options taking an argument, the argument's values (a
 * `a|b|c` argument name is a choice, FILE files, DIR directories), the
 * verb's subcommands (the lowercase words an operand alternative starts
 * with: `ls | inspect VOLUME...`, `bash|zsh|fish`) and what its other
 * operands name (STAGE/SERVICE: `cpipe config --services` of the spec the
 * line's -f/-C select, VOLUME: `config --volumes`, COMMAND: the verbs). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "opts.h"

/* One option as a context offers it: a global one loses its letter where
 * the verb has an option with the same letter. */
struct copt {
	const struct cli_opt *o;
	char letter;
	bool global;
};

static size_t ctx_opts(struct copt *out, size_t max, const char *verb)
{
	const struct cli_verb *v = verb ? cli_verb_find(verb) : NULL;
	size_t n = 0;
	for (const struct cli_opt *o = v ? v->opts : NULL; o && o->name && n < max; o++)
		out[n++] = (struct copt){o, o->letter, false};
	for (const struct cli_opt *g = cli_global_opts; g->name && n < max; g++) {
		char letter = g->letter;
		for (const struct cli_opt *o = v ? v->opts : NULL; letter && o && o->name; o++)
			if (o->letter == letter)
				letter = 0;
		out[n++] = (struct copt){g, letter, true};
	}
	return n;
}

static bool is_word(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* The `|`-separated alternatives of `s` whose first word is lowercase, that
 * first word each, space-separated into `out`; false if there are none. */
static bool choices(char *out, size_t size, const char *s)
{
	size_t len = 0;
	out[0] = '\0';
	while (s && *s) {
		while (*s == ' ')
			s++;
		size_t n = strcspn(s, " |");
		if (is_word(s, n) && len + n + 2 < size) {
			len += (size_t)snprintf(out + len, size - len, "%s%.*s", len ? " " : "", (int)n,
						s);
		}
		s += strcspn(s, "|");
		if (*s == '|')
			s++;
	}
	return len > 0;
}

/* What the verb's non-subcommand operands name, from their placeholders. */
static const char *operand_kind(const char *operands)
{
	static const struct {
		const char *word, *kind;
	} kinds[] = {
		{"STAGE", "stages"}, {"SERVICE", "stages"}, {"VOLUME", "volumes"}, {"COMMAND", "commands"},
	};
	for (const char *s = operands; s && *s;) {
		s += strspn(s, " |[]");
		size_t n = strcspn(s, " |[]");
		size_t w = n;
		while (w > 0 && s[w - 1] == '.')
			w--;
		for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
			if (strlen(kinds[i].word) == w && strncmp(s, kinds[i].word, w) == 0)
				return kinds[i].kind;
		s += n;
	}
	return "";
}

/* A shell variable's suffix for a verb: letters and digits kept, the rest _. */
static const char *ident(char *buf, size_t size, const char *verb)
{
	snprintf(buf, size, "%s", verb ? verb : "");
	for (char *p = buf; *p; p++)
		if (!isalnum((unsigned char)*p))
			*p = '_';
	return buf;
}

/* Every context: NULL (before the verb), then each verb of the table. */
#define FOR_EACH_CONTEXT(i, verb)                                                              \
	for (size_t i = 0; i == 0 || cli_command_name(i - 1); i++)                             \
		for (const char *verb = i ? cli_command_name(i - 1) : NULL, *once_ = ""; once_;  \
		     once_ = NULL)

enum quote { Q_SH, Q_FISH };

/* `s` single-quoted for the shell: ' closes, \' and reopens (sh), \' (fish). */
static void put_quoted(FILE *out, const char *s, enum quote q)
{
	fputc('\'', out);
	for (; *s; s++) {
		if (*s == '\'')
			fputs(q == Q_SH ? "'\\''" : "\\'", out);
		else if (*s == '\\' && q == Q_FISH)
			fputs("\\\\", out);
		else
			fputc(*s, out);
	}
	fputc('\'', out);
}

/* The data tables: one variable per kind and context; arrays for zsh and
 * fish, space-separated strings for bash. Descriptions for zsh and fish. */
static void put_tables(FILE *out, const char *shell)
{
	bool bash = strcmp(shell, "bash") == 0, fish = strcmp(shell, "fish") == 0;
	const char *pre = fish ? "set -g __cpipe_" : "_cpipe_";
	const char *open = fish ? " " : bash ? "='" : "=(";
	const char *close = fish ? "\n" : bash ? "'\n" : ")\n";
	char id[64], buf[256];

	fprintf(out, "%sverbs%s", pre, open);
	for (size_t i = 0; cli_command_name(i); i++)
		fprintf(out, "%s%s", i ? " " : "", cli_command_name(i));
	fputs(close, out);
	if (!bash) {
		fprintf(out, "%sdescs%s", pre, fish ? "" : "=(");
		for (size_t i = 0; cli_command_name(i); i++) {
			snprintf(buf, sizeof(buf), fish ? "%s\t%s" : "%s:%s", cli_command_name(i),
				 cli_summary(cli_command_name(i)));
			fputc(' ', out);
			put_quoted(out, buf, fish ? Q_FISH : Q_SH);
		}
		fputs(fish ? "\n" : ")\n", out);
	}
	fprintf(out, "%sspec_opts%s", pre, open);
	size_t k = 0;
	struct copt g[64];
	size_t ng = ctx_opts(g, ARRAY_LEN(g), NULL);
	for (size_t j = 0; j < ng; j++) {
		const char *a = g[j].o->arg;
		if (a && (strcmp(a, "FILE") == 0 || strcmp(a, "DIR") == 0)) {
			if (g[j].letter)
				fprintf(out, "%s-%c", k++ ? " " : "", g[j].letter);
			fprintf(out, "%s--%s", k++ ? " " : "", g[j].o->name);
		}
	}
	fputs(close, out);

	FOR_EACH_CONTEXT(i, verb) {
		struct copt opts[64];
		size_t n = ctx_opts(opts, ARRAY_LEN(opts), verb);
		ident(id, sizeof(id), verb);
		fprintf(out, "%sopts_%s%s", pre, id, open);
		for (size_t j = 0; j < n; j++) {
			const struct copt *c = &opts[j];
			for (int form = 0; form < 2; form++) {
				if (form == 1 && !c->letter)
					continue;
				if (form == 0)
					snprintf(buf, sizeof(buf), "--%s", c->o->name);
				else
					snprintf(buf, sizeof(buf), "-%c", c->letter);
				if (bash) {
					fprintf(out, "%s%s", j || form ? " " : "", buf);
					continue;
				}
				size_t len = strlen(buf);
				snprintf(buf + len, sizeof(buf) - len, fish ? "\t%s" : ":%s", c->o->help);
				fputc(' ', out);
				put_quoted(out, buf, fish ? Q_FISH : Q_SH);
			}
		}
		fputs(close, out);
		fprintf(out, "%sargs_%s%s", pre, id, open);
		k = 0;
		for (size_t j = 0; j < n; j++) {
			if (!opts[j].o->arg)
				continue;
			if (opts[j].letter)
				fprintf(out, "%s-%c", k++ ? " " : "", opts[j].letter);
			fprintf(out, "%s--%s", k++ ? " " : "", opts[j].o->name);
		}
		fputs(close, out);
		if (!verb)
			continue;
		const struct cli_verb *v = cli_verb_find(verb);
		const char *operands = v ? v->operands : "";
		choices(buf, sizeof(buf), operands);
		fprintf(out, "%ssubs_%s%s%s%s", pre, id, open, buf, close);
		fprintf(out, "%skind_%s%s%s%s", pre, id, open, operand_kind(operands), close);
	}
}

/* How a shell writes an arm of its `case` (sh) or `switch` (fish) on
 * VERB:OPTION, and completes the argument: choices between words_pre and
 * words_post, files, directories, or nothing. */
struct value_fmt {
	const char *arm, *quote, *sep, *arm_end, *body_end;
	const char *words_pre, *words_post, *files, *dirs, *none;
};

static void put_arm_word(FILE *out, const struct value_fmt *f, const char *verb,
			 const char *dashes, const char *name)
{
	fprintf(out, "%s%s:%s%s%s", f->quote, verb, dashes, name, f->quote);
}

/* The values of every option's argument, one arm per option: a verb's own
 * first, then the global ones for any verb. */
static void put_values(FILE *out, const struct value_fmt *f)
{
	char buf[256];
	FOR_EACH_CONTEXT(i, verb) {
		struct copt opts[64];
		size_t n = ctx_opts(opts, ARRAY_LEN(opts), verb);
		for (size_t j = 0; j < n; j++) {
			const struct copt *c = &opts[j];
			if (!c->o->arg || (c->global && verb))
				continue;
			const char *v = verb ? verb : "*";
			fputs(f->arm, out);
			put_arm_word(out, f, v, "--", c->o->name);
			char letter[2] = {c->letter, '\0'};
			if (c->letter) {
				fputs(f->sep, out);
				put_arm_word(out, f, v, "-", letter);
			}
			fputs(f->arm_end, out);
			if (choices(buf, sizeof(buf), c->o->arg))
				fprintf(out, "%s%s%s", f->words_pre, buf, f->words_post);
			else if (strcmp(c->o->arg, "FILE") == 0)
				fputs(f->files, out);
			else if (strcmp(c->o->arg, "DIR") == 0)
				fputs(f->dirs, out);
			else
				fputs(f->none, out);
			fputs(f->body_end, out);
		}
	}
}

/* A bash or zsh script after its header: the tables, _cpipe_value, `body`. */
static void put_sh(FILE *out, const char *shell, const struct value_fmt *f, const char *body)
{
	put_tables(out, shell);
	fputs("\n# The values of the argument of option $1 (VERB:OPTION).\n_cpipe_value() {\n"
	      "\tcase $1 in\n", out);
	put_values(out, f);
	fputs("\tesac\n}\n\n", out);
	fputs(body, out);
}

static const char bash_body[] =
	"# The line so far: the verb, how many operands follow it, the -f/-C options.\n"
	"_cpipe_scan() {\n"
	"\tlocal i w args\n"
	"\tverb= n=0 ddash= spec=()\n"
	"\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	"\t\tw=${COMP_WORDS[i]}\n"
	"\t\tif [[ -z $ddash && $w == -?* ]]; then\n"
	"\t\t\t[[ $w == -- ]] && { ddash=1; continue; }\n"
	"\t\t\targs=_cpipe_args_${verb//[^a-zA-Z0-9]/_}\n"
	"\t\t\tif [[ \" ${!args} \" == *\" $w \"* ]]; then\n"
	"\t\t\t\t[[ \" $_cpipe_spec_opts \" == *\" $w \"* ]] && spec+=(\"$w\" \"${COMP_WORDS[i+1]}\")\n"
	"\t\t\t\t((i++))\n"
	"\t\t\telif [[ $w == --*=* && \" $_cpipe_spec_opts \" == *\" ${w%%=*} \"* ]]; then\n"
	"\t\t\t\tspec+=(\"$w\")\n"
	"\t\t\tfi\n"
	"\t\telif [[ -z $verb ]]; then\n"
	"\t\t\t[[ \" $_cpipe_verbs \" == *\" $w \"* ]] || return 1\n"
	"\t\t\tverb=$w\n"
	"\t\telse\n"
	"\t\t\tn=$((n + 1))\n"
	"\t\tfi\n"
	"\tdone\n"
	"\treturn 0\n"
	"}\n"
	"\n"
	"_cpipe() {\n"
	"\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	"\tlocal verb n ddash v words=\n"
	"\tlocal -a spec\n"
	"\tCOMPREPLY=()\n"
	"\t_cpipe_scan || return 0\n"
	"\tv=${verb//[^a-zA-Z0-9]/_}\n"
	"\tlocal args=_cpipe_args_$v opts=_cpipe_opts_$v subs=_cpipe_subs_$v kind=_cpipe_kind_$v\n"
	"\tif [[ -z $ddash ]] && ((COMP_CWORD > 1)) && [[ \" ${!args} \" == *\" $prev \"* ]]; then\n"
	"\t\t_cpipe_value \"$verb:$prev\"\n"
	"\t\treturn 0\n"
	"\tfi\n"
	"\tif [[ -z $ddash && $cur == -* ]]; then\n"
	"\t\twords=${!opts}\n"
	"\telif [[ -z $verb ]]; then\n"
	"\t\twords=$_cpipe_verbs\n"
	"\telif ((n == 0)) && [[ -n ${!subs} ]]; then\n"
	"\t\twords=${!subs}\n"
	"\telse\n"
	"\t\tcase ${!kind} in\n"
	"\t\tstages) words=$(\"${COMP_WORDS[0]}\" \"${spec[@]}\" config --services 2>/dev/null) ;;\n"
	"\t\tvolumes) words=$(\"${COMP_WORDS[0]}\" \"${spec[@]}\" config --volumes 2>/dev/null) ;;\n"
	"\t\tcommands) words=$_cpipe_verbs ;;\n"
	"\t\tesac\n"
	"\tfi\n"
	"\tCOMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
	"}\n"
	"complete -F _cpipe cpipe\n";

static void put_bash(FILE *out)
{
	fputs("# bash completion for cpipe, generated by `cpipe completion bash` from cpipe's\n"
	      "# command and option tables. Install as "
	      "PREFIX/share/bash-completion/completions/cpipe\n"
	      "# or source it from ~/.bashrc.\n",
	      out);
	static const struct value_fmt f = {
		"\t", "", " | ", ")\n\t\t", " ;;\n", "COMPREPLY=($(compgen -W '", "' -- \"$cur\"))",
		"COMPREPLY=($(compgen -f -- \"$cur\"))",
		"COMPREPLY=($(compgen -d -- \"$cur\"))", ":",
	};
	put_sh(out, "bash", &f, bash_body);
}

static const char zsh_body[] =
	"# The line so far: the verb, how many operands follow it, the -f/-C options.\n"
	"_cpipe_scan() {\n"
	"\tlocal i w args\n"
	"\tverb= n=0 ddash= spec=()\n"
	"\tfor ((i = 2; i < CURRENT; i++)); do\n"
	"\t\tw=$words[i]\n"
	"\t\tif [[ -z $ddash && $w == -?* ]]; then\n"
	"\t\t\tif [[ $w == -- ]]; then ddash=1; continue; fi\n"
	"\t\t\targs=_cpipe_args_${verb//[^a-zA-Z0-9]/_}\n"
	"\t\t\tif (( ${${(P)args}[(Ie)$w]} )); then\n"
	"\t\t\t\t(( ${_cpipe_spec_opts[(Ie)$w]} )) && spec+=($w $words[i+1])\n"
	"\t\t\t\t(( i++ ))\n"
	"\t\t\telif [[ $w == --*=* ]] && (( ${_cpipe_spec_opts[(Ie)${w%%=*}]} )); then\n"
	"\t\t\t\tspec+=($w)\n"
	"\t\t\tfi\n"
	"\t\telif [[ -z $verb ]]; then\n"
	"\t\t\t(( ${_cpipe_verbs[(Ie)$w]} )) || return 1\n"
	"\t\t\tverb=$w\n"
	"\t\telse\n"
	"\t\t\tn=$((n + 1))\n"
	"\t\tfi\n"
	"\tdone\n"
	"\treturn 0\n"
	"}\n"
	"\n"
	"_cpipe() {\n"
	"\tlocal verb n ddash v args opts subs kind\n"
	"\tlocal -a spec names\n"
	"\t_cpipe_scan || return 1\n"
	"\tv=${verb//[^a-zA-Z0-9]/_}\n"
	"\targs=_cpipe_args_$v opts=_cpipe_opts_$v subs=_cpipe_subs_$v kind=_cpipe_kind_$v\n"
	"\tif [[ -z $ddash ]] && (( CURRENT > 2 && ${${(P)args}[(Ie)$words[CURRENT-1]]} )); then\n"
	"\t\t_cpipe_value \"$verb:$words[CURRENT-1]\"\n"
	"\telif [[ -z $ddash && $PREFIX == -* ]]; then\n"
	"\t\t_describe -t options option $opts\n"
	"\telif [[ -z $verb ]]; then\n"
	"\t\t_describe -t commands command _cpipe_descs\n"
	"\telif (( n == 0 && ${#${(P)subs}} )); then\n"
	"\t\tcompadd -- ${(P)subs}\n"
	"\telse\n"
	"\t\tcase ${(P)kind} in\n"
	"\t\tstages) names=(${(f)\"$($words[1] \"${(@Q)spec}\" config --services 2>/dev/null)\"}) ;;\n"
	"\t\tvolumes) names=(${(f)\"$($words[1] \"${(@Q)spec}\" config --volumes 2>/dev/null)\"}) ;;\n"
	"\t\tcommands) names=($_cpipe_verbs) ;;\n"
	"\t\tesac\n"
	"\t\tcompadd -- $names\n"
	"\tfi\n"
	"}\n"
	"\n"
	"if [[ $funcstack[1] == _cpipe ]]; then\n"
	"\t_cpipe \"$@\"\n"
	"else\n"
	"\tcompdef _cpipe cpipe\n"
	"fi\n";

static void put_zsh(FILE *out)
{
	static const struct value_fmt f = {
		"\t", "", " | ", ")\n\t\t", " ;;\n", "compadd -- ", "", "_files", "_files -/", "_message value",
	};
	fputs("#compdef cpipe\n"
	      "# zsh completion for cpipe, generated by `cpipe completion zsh` from cpipe's\n"
	      "# command and option tables. Install as _cpipe in a directory of $fpath\n"
	      "# (PREFIX/share/zsh/vendor-completions), or source it after compinit.\n",
	      out);
	put_sh(out, "zsh", &f, zsh_body);
}

static const char fish_body[] =
	"# The line so far: the verb, how many operands follow it, the -f/-C options.\n"
	"function __cpipe_scan\n"
	"\tset -l toks (commandline -opc)\n"
	"\tset -g __cpipe_verb\n"
	"\tset -g __cpipe_n 0\n"
	"\tset -g __cpipe_spec\n"
	"\tset -l ddash 0\n"
	"\tset -l skip 0\n"
	"\tfor i in (seq 2 (count $toks))\n"
	"\t\tset -l w $toks[$i]\n"
	"\t\tif test $skip = 1\n"
	"\t\t\tset skip 0\n"
	"\t\telse if test $ddash = 0; and string match -q -- '-?*' $w\n"
	"\t\t\tset -l args __cpipe_args_(string replace -ar '[^a-zA-Z0-9]' _ -- \"$__cpipe_verb\")\n"
	"\t\t\tif test $w = --\n"
	"\t\t\t\tset ddash 1\n"
	"\t\t\telse if contains -- $w $$args\n"
	"\t\t\t\tset skip 1\n"
	"\t\t\t\tif contains -- $w $__cpipe_spec_opts; and set -q toks[(math $i + 1)]\n"
	"\t\t\t\t\tset -a __cpipe_spec $w $toks[(math $i + 1)]\n"
	"\t\t\t\tend\n"
	"\t\t\telse if string match -q -- '--*=*' $w; and contains -- (string split -m1 = -- $w)[1] $__cpipe_spec_opts\n"
	"\t\t\t\tset -a __cpipe_spec $w\n"
	"\t\t\tend\n"
	"\t\telse if test -z \"$__cpipe_verb\"\n"
	"\t\t\tcontains -- $w $__cpipe_verbs; or return 1\n"
	"\t\t\tset __cpipe_verb $w\n"
	"\t\telse\n"
	"\t\t\tset __cpipe_n (math $__cpipe_n + 1)\n"
	"\t\tend\n"
	"\tend\n"
	"\tset -g __cpipe_ddash $ddash\n"
	"\treturn 0\n"
	"end\n"
	"\n"
	"function __cpipe_complete\n"
	"\t__cpipe_scan; or return\n"
	"\tset -l cur (commandline -ct)\n"
	"\tset -l prev (commandline -opc)[-1]\n"
	"\tset -l v (string replace -ar '[^a-zA-Z0-9]' _ -- \"$__cpipe_verb\")\n"
	"\tset -l args __cpipe_args_$v\n"
	"\tset -l opts __cpipe_opts_$v\n"
	"\tset -l subs __cpipe_subs_$v\n"
	"\tset -l kind __cpipe_kind_$v\n"
	"\tif test $__cpipe_ddash = 0; and test (count (commandline -opc)) -gt 1; and contains -- $prev $$args\n"
	"\t\t__cpipe_value \"$__cpipe_verb:$prev\" \"$cur\"\n"
	"\telse if test $__cpipe_ddash = 0; and string match -q -- '-*' \"$cur\"\n"
	"\t\tprintf '%s\\n' $$opts\n"
	"\telse if test -z \"$__cpipe_verb\"\n"
	"\t\tprintf '%s\\n' $__cpipe_descs\n"
	"\telse if test $__cpipe_n = 0; and test -n \"$$subs\"\n"
	"\t\tprintf '%s\\n' $$subs\n"
	"\telse\n"
	"\t\tswitch \"$$kind\"\n"
	"\t\tcase stages\n"
	"\t\t\tcommand cpipe $__cpipe_spec config --services 2>/dev/null\n"
	"\t\tcase volumes\n"
	"\t\t\tcommand cpipe $__cpipe_spec config --volumes 2>/dev/null\n"
	"\t\tcase commands\n"
	"\t\t\tprintf '%s\\n' $__cpipe_descs\n"
	"\t\tend\n"
	"\tend\n"
	"end\n"
	"\n"
	"complete -c cpipe -e\n"
	"complete -c cpipe -f -a '(__cpipe_complete)'\n";

static void put_fish(FILE *out)
{
	static const struct value_fmt f = {
		"\tcase ", "'", " ", "\n\t\t", "\n", "printf '%s\\n' ", "", "__fish_complete_path $argv[2]",
		"__fish_complete_directories $argv[2]", "true",
	};
	fputs("# fish completion for cpipe, generated by `cpipe completion fish` from cpipe's\n"
	      "# command and option tables. Install as "
	      "PREFIX/share/fish/vendor_completions.d/cpipe.fish.\n",
	      out);
	put_tables(out, "fish");
	fputs("\n# The values of the argument of option $argv[1] (VERB:OPTION).\n"
	      "function __cpipe_value\n\tswitch $argv[1]\n", out);
	put_values(out, &f);
	fputs("\tend\nend\n\n", out);
	fputs(fish_body, out);
}

int cmd_completion(struct cli *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*put)(FILE *out);
	} shells[] = {{"bash", put_bash}, {"zsh", put_zsh}, {"fish", put_fish}};
	int rc = cli_parse_common(c, argc, argv);
	if (rc >= 0)
		return rc;
	if (argc - optind != 1)
		return cli_usage_error(argv[0]);
	for (size_t i = 0; i < ARRAY_LEN(shells); i++) {
		if (strcmp(shells[i].name, argv[optind]) == 0) {
			shells[i].put(stdout);
			return fflush(stdout) == 0 ? EXIT_OK : EXIT_USAGE;
		}
	}
	fprintf(stderr, "cpipe: no completion for shell \"%s\"; use bash, zsh or fish\n",
		argv[optind]);
	return EXIT_USAGE;
}

/* `s` as roff text: backslashes and hyphens escaped, a leading . or ' kept
 * from being read as a request. */
static void roff_puts(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

static void man_opts(FILE *out, const char *verb, bool globals)
{
	struct copt opts[64];
	size_t n = ctx_opts(opts, ARRAY_LEN(opts), verb);
	for (size_t j = 0; j < n; j++) {
		const struct copt *c = &opts[j];
		if (c->global != globals)
			continue;
		fputs(".TP\n", out);
		if (c->letter)
			fprintf(out, "\\fB\\-%c\\fR, ", c->letter);
		fputs("\\fB\\-\\-", out);
		roff_puts(out, c->o->name);
		fputs("\\fR", out);
		if (c->o->arg) {
			fputs(" \\fI", out);
			roff_puts(out, c->o->arg);
			fputs("\\fR", out);
		}
		fputc('\n', out);
		roff_puts(out, c->o->help);
		fputc('\n', out);
	}
}

void cli_man_commands(FILE *out)
{
	fputs(".SH COMMANDS\n", out);
	for (size_t i = 0; cli_command_name(i); i++) {
		const char *verb = cli_command_name(i);
		const struct cli_verb *v = cli_verb_find(verb);
		fputs(".SS \"", out);
		roff_puts(out, verb);
		fputs("\"\n.B cpipe ", out);
		roff_puts(out, verb);
		fputs("\n[\\fIOPTIONS\\fR]", out);
		if (v && *v->operands) {
			fputc(' ', out);
			roff_puts(out, v->operands);
		}
		fputs("\n.PP\n", out);
		roff_puts(out, cli_summary(verb));
		fputs(".\n", out);
		man_opts(out, verb, false);
	}
	fputs(".SH GLOBAL OPTIONS\n"
	      "These go before or after the command; after it, a command's own short option\n"
	      "wins over a global one with the same letter.\n\\fB\\-\\-\\fR ends the options.\n",
	      out);
	man_opts(out, NULL, true);
}
