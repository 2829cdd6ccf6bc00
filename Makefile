# cpipe — build, test, install.
#   make            build ./cpipe
#   make deps       install the Debian packages the build and tests need (only missing ones)
#   make test       every suite; ends with "N passed, N failed, N skipped"
#   make asan       ASan+UBSan build of cpipe and the unit tests, then every suite under it
#   make fuzz       the fuzz targets (spec loader, Dockerfile reader) for FUZZ_SECONDS each (default 60)
#   make bench      the benchmarks in bench/
#   make lint       clang-format check and cppcheck
#   make install PREFIX=/usr/local

PREFIX ?= /usr/local
CC ?= cc
PKGS := yaml-0.1 libcjson libcurl libarchive libcrypto libgit2 libmicrohttpd libwebsockets
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl, libarchive, libmicrohttpd and libwebsockets are compiled against
# but loaded on first use (lib/lazy_curl.c, lib/lazy_archive.c,
# lib/lazy_mhd.c, lib/lazy_lws.c): mapping
# them and the libraries they pull in cost more at every start than a local
# run takes.
LAZY_PKGS := libcurl libarchive libmicrohttpd libwebsockets
PKG_LIBS := $(shell pkg-config --libs $(filter-out $(LAZY_PKGS),$(PKGS)) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
ifeq ($(CI),true)
WARN += -Werror
endif
CFLAGS ?= -g -O2
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP
LDLIBS := $(PKG_LIBS) -lpthread

LIB_SRC := $(sort $(wildcard lib/*.c pipeline/*.c stages/*.c artifacts/*.c))
CLI_SRC := $(sort $(wildcard cli/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

# BUILD selects the object directory: build/ for the normal build,
# build/asan/ for the sanitizer build (same sources, other flags).
BUILD ?= build
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
CPIPE := $(if $(filter build,$(BUILD)),cpipe,$(BUILD)/cpipe)

DEBIAN_PKGS := build-essential pkg-config libyaml-dev libcjson-dev libcmocka-dev libcurl4-openssl-dev \
	libarchive-dev libssl-dev libgit2-dev docker.io docker-compose \
	bats clang libclang-rt-14-dev busybox-static iproute2 procps psmisc util-linux \
	hyperfine time jq curl wrk strace mmdebstrap passt dataset-fashion-mnist libmicrohttpd-dev libwebsockets-dev libgif-dev zlib1g-dev \
	zsh fish man-db groff-base podman golang-github-containernetworking-plugin-dnsname \
	chromium file nginx-light nodejs openssl python3 python3-torch tmux

.PHONY: all deps test unit asan fuzz bench lint layers install clean example clang-check man completions
all: $(CPIPE)

$(CPIPE): $(CLI_OBJ) $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_BIN)

# Installs what is missing first, so `make test` works on a fresh machine.
test:
	@$(MAKE) --no-print-directory -s deps
	@$(MAKE) --no-print-directory $(CPIPE) unit
	@MAKEFLAGS= $(MAKE) --no-print-directory -s -C examples/catgif BUILD=build CFLAGS="-g -O2"
	@tests/docker-setup || echo "make test: Docker is not usable here; its tests will be skipped"
	@tests/podman-setup || echo "make test: Podman is not usable here; its tests will be skipped"
	@CPIPE_BIN=$(abspath $(CPIPE)) UNIT_DIR=$(abspath $(BUILD)/tests) tests/run-all

# The README's first command: the catgif pipeline on the default runtime
# (local), on the full Fashion-MNIST from Debian's dataset-fashion-mnist.
EXAMPLE ?= examples/catgif
example:
	@$(MAKE) --no-print-directory -s deps
	@$(MAKE) --no-print-directory $(CPIPE)
	@$(MAKE) --no-print-directory -s -C $(EXAMPLE)
	./cpipe -C $(EXAMPLE) run
	./cpipe -C $(EXAMPLE) report

asan:
	LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0 \
	$(MAKE) BUILD=build/asan CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" test

# clang catches what gcc lets through (a goto into the scope of a cleanup
# variable, for one); CI runs it.
clang-check:
	@for f in $(LIB_SRC) $(CLI_SRC) $(UNIT_SRC) $(wildcard tests/fuzz/fuzz_*.c); do \
		clang -std=c11 -D_GNU_SOURCE -fsyntax-only $(WARN) -Werror $(PKG_CFLAGS) $$f || exit 1; \
	done; echo "clang-check: clean"

FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= spec dockerfile
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS) \
		-o $@ $< $(LIB_SRC) $(PKG_LIBS) -lpthread

# Each target for FUZZ_SECONDS, from its checked-in corpus (tests/fuzz/corpus/NAME).
fuzz: $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus-$$t && cp -n tests/fuzz/corpus/$$t/* build/fuzz/corpus-$$t/ 2>/dev/null; \
		build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -rss_limit_mb=2048 \
			build/fuzz/corpus-$$t tests/fuzz/corpus/$$t || exit 1; \
	done

bench: $(CPIPE)
	bench/run-all

deps:
	@missing=""; for p in $(DEBIAN_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all build and test dependencies are installed"; fi

# clang-format reports; it is not enforced in CI (the code predates the file).
lint: layers
	-clang-format --dry-run $(LIB_SRC) $(CLI_SRC) $(wildcard */*.h) 2>&1 | grep -c warning
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--suppress=missingIncludeSystem -D_GNU_SOURCE --include=/usr/include/cjson/cJSON.h \
		lib pipeline stages artifacts cli

# DESIGN.md's layering: no arrow from stages/ or artifacts/ back into
# pipeline/ (a runtime sees a task description, never the spec model).
layers:
	@if grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"\(\.\./\)*pipeline/' \
		stages/*.[ch] artifacts/*.[ch]; then \
		echo "layers: stages/ and artifacts/ must not include pipeline/ headers" >&2; exit 1; \
	fi; echo "layers: clean"

# cpipe(1)'s COMMANDS section and the completion scripts are printed by the
# binary from its command and option tables, so they cannot drift from it.
MAN_PAGES := $(BUILD)/man/cpipe.1 docs/man/cpipe.yml.5
COMPLETIONS := $(BUILD)/completion/cpipe.bash $(BUILD)/completion/_cpipe $(BUILD)/completion/cpipe.fish

$(BUILD)/man/cpipe.1: docs/man/cpipe.1.in $(CPIPE)
	@mkdir -p $(dir $@)
	./$(CPIPE) help --man > $@.cmds
	awk -v ver="$$(./$(CPIPE) version | cut -d' ' -f2)" \
		'NR == FNR { gen = gen $$0 "\n"; next } /^@COMMANDS@$$/ { printf "%s", gen; next } \
		{ gsub(/@VERSION@/, ver); print }' $@.cmds $< > $@.tmp
	rm -f $@.cmds && mv $@.tmp $@

$(BUILD)/completion/cpipe.bash $(BUILD)/completion/_cpipe $(BUILD)/completion/cpipe.fish: $(CPIPE)
	@mkdir -p $(dir $@)
	./$(CPIPE) completion bash > $(BUILD)/completion/cpipe.bash.tmp
	./$(CPIPE) completion zsh > $(BUILD)/completion/_cpipe.tmp
	./$(CPIPE) completion fish > $(BUILD)/completion/cpipe.fish.tmp
	for f in cpipe.bash _cpipe cpipe.fish; do mv $(BUILD)/completion/$$f.tmp $(BUILD)/completion/$$f; done

man: $(MAN_PAGES)
completions: $(COMPLETIONS)

install: $(CPIPE) $(MAN_PAGES) $(COMPLETIONS)
	install -D -m 0755 $(CPIPE) $(DESTDIR)$(PREFIX)/bin/cpipe
	install -D -m 0644 $(BUILD)/man/cpipe.1 $(DESTDIR)$(PREFIX)/share/man/man1/cpipe.1
	install -D -m 0644 docs/man/cpipe.yml.5 $(DESTDIR)$(PREFIX)/share/man/man5/cpipe.yml.5
	install -D -m 0644 $(BUILD)/completion/cpipe.bash \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/cpipe
	install -D -m 0644 $(BUILD)/completion/_cpipe $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_cpipe
	install -D -m 0644 $(BUILD)/completion/cpipe.fish \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/cpipe.fish

clean:
	rm -rf build cpipe

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
