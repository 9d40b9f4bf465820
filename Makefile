# runm - containers in micro-VMs for containerd. See README.md.
#
#   make            build host binaries and the agent
#   make guest      build the guest kernel (from Debian's linux-source-6.1, cached
#                   in /var/cache/runm) + initramfs; GUEST_KERNEL=debian: Debian's
#                   packaged kernel and its modules instead
#   make demo       run a container in its own VM through containerd
#   make test       all tests (unit under ASan/UBSan, fuzz smoke, e2e)
#   make bench      benchmarks (print figures, never fail on time)
#   make soak       RUNM_SOAK_RUNS (1000) containers one after another, then
#                   RUNM_SOAK_CONCURRENT (20) at once; fails on anything left behind
#   make fuzz       long fuzz runs
#   make deps       install missing Debian packages (idempotent)

# `make` alone builds the binaries (the protobuf stamp rule comes first in the file).
.DEFAULT_GOAL := all
PREFIX ?= /usr/local
BUILD ?= build
GEN := $(BUILD)/gen
ARCH ?= $(shell uname -m)

CC ?= gcc
WARN := -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes -Wshadow \
	-Wformat=2 -Wno-format-nonliteral -Wpointer-arith -Wvla
CPPFLAGS := -D_GNU_SOURCE -Isrc -I$(GEN) -I$(GEN)/proto
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) -fno-strict-aliasing -D_FORTIFY_SOURCE=2 -fstack-protector-strong
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS := -lprotobuf-c
HOST_LDLIBS := -ljson-c $(LDLIBS)

# ---- protobuf: containerd's task API from Debian's source package, runm's own ----
GOSRC := /usr/share/gocode/src
CTRD := github.com/containerd/containerd
PROTO_INC := -I$(GOSRC) -I$(GOSRC)/github.com/gogo/protobuf -I/usr/include -Iproto
PROTOS_EXT := $(CTRD)/runtime/v2/task/shim.proto $(CTRD)/api/types/mount.proto \
	$(CTRD)/api/types/task/task.proto $(CTRD)/api/events/task.proto \
	$(CTRD)/api/services/ttrpc/events/v1/events.proto $(CTRD)/protobuf/plugin/fieldpath.proto \
	gogoproto/gogo.proto google/protobuf/descriptor.proto google/protobuf/any.proto \
	google/protobuf/empty.proto google/protobuf/timestamp.proto
PROTOS_OWN := ttrpc.proto google/rpc/status.proto runm/agent.proto runm/options.proto
GEN_C_EXT := $(addprefix $(GEN)/,$(PROTOS_EXT:.proto=.pb-c.c))
GEN_C_OWN := $(addprefix $(GEN)/,$(PROTOS_OWN:.proto=.pb-c.c))
# What the guest agent needs (no containerd types).
GEN_C_AGENT := $(GEN)/ttrpc.pb-c.c $(GEN)/google/rpc/status.pb-c.c $(GEN)/runm/agent.pb-c.c \
	$(GEN)/google/protobuf/any.pb-c.c

$(GEN)/.stamp: $(addprefix proto/,$(PROTOS_OWN)) | deps-check
	@mkdir -p $(GEN)
	protoc-c $(PROTO_INC) --c_out=$(GEN) $(PROTOS_EXT) $(PROTOS_OWN)
	@touch $@
$(GEN_C_EXT) $(GEN_C_OWN): $(GEN)/.stamp

# ---- sources by part ----
COMMON_SRC := $(wildcard src/common/*.c)
TTRPC_SRC := $(wildcard src/ttrpc/*.c)
PROTO_SRC := $(wildcard src/proto/*.c)
VM_SRC := $(wildcard src/vm/*.c)
EVENTS_SRC := $(wildcard src/events/*.c)
ENGINE_SRC := $(wildcard src/engine/*.c)
SHIM_SRC := $(wildcard src/shim/*.c)
CLI_SRC := $(wildcard src/cli/*.c)
AGENT_SRC := $(wildcard src/agent/*.c)

HOST_LIB_SRC := $(COMMON_SRC) $(TTRPC_SRC) $(PROTO_SRC) $(VM_SRC) $(EVENTS_SRC) $(ENGINE_SRC)
HOST_GEN := $(GEN_C_EXT) $(GEN_C_OWN)
obj = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))

# `runm --version` names the commit it was built from (runc's format).
RUNM_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
$(BUILD)/obj/src/cli/main.o: CPPFLAGS += -DRUNM_COMMIT='"$(RUNM_COMMIT)"'

# Host flavour
$(BUILD)/obj/%.o: %.c $(GEN)/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/obj/$(GEN)/%.o: $(GEN)/%.c $(GEN)/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -O2 -g -w -c $< -o $@
# Sanitizer flavour (unit tests)
$(BUILD)/asan/%.o: %.c $(GEN)/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) -O1 -MMD -MP -c $< -o $@
$(BUILD)/asan/$(GEN)/%.o: $(GEN)/%.c $(GEN)/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -O1 -g -w $(SAN) -c $< -o $@
# Static flavour (guest agent)
$(BUILD)/static/%.o: %.c $(GEN)/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -DRUNM_GUEST -MMD -MP -c $< -o $@
$(BUILD)/static/$(GEN)/%.o: $(GEN)/%.c $(GEN)/.stamp
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -O2 -g -w -c $< -o $@

HOST_LIB := $(BUILD)/librunm.a
HOST_LIB_ASAN := $(BUILD)/librunm-asan.a
$(HOST_LIB): $(call obj,obj,$(HOST_LIB_SRC) $(HOST_GEN))
	@rm -f $@; ar rcs $@ $^
$(HOST_LIB_ASAN): $(call obj,asan,$(HOST_LIB_SRC) $(HOST_GEN))
	@rm -f $@; ar rcs $@ $^

SHIM := $(BUILD)/bin/containerd-shim-runm-v1
CLI := $(BUILD)/bin/runm
AGENT := $(BUILD)/bin/runm-agent
BINS := $(if $(SHIM_SRC),$(SHIM)) $(if $(CLI_SRC),$(CLI)) $(if $(AGENT_SRC),$(AGENT))

all: $(BINS)

$(SHIM): $(call obj,obj,$(SHIM_SRC)) $(HOST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(HOST_LDLIBS)
$(CLI): $(call obj,obj,$(CLI_SRC)) $(HOST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(HOST_LDLIBS)
$(AGENT): $(call obj,static,$(AGENT_SRC) $(COMMON_SRC) $(TTRPC_SRC) $(PROTO_SRC) $(GEN_C_AGENT))
	@mkdir -p $(dir $@)
	$(CC) -static $(CFLAGS) -o $@ $^ $(LDLIBS)

# ---- guest image ----
# GUEST_KERNEL=source (default): built from linux-source-6.1 with
# guest/kernel/$(ARCH).config by guest/kernel/build.sh, cached outside the
# clone ($$RUNM_CACHE or /var/cache/runm): about half the boot time and 40%
# less memory than Debian's kernel; a cold build takes 5 min on 2 idle
# cores, a cached one nothing. GUEST_KERNEL=debian: the fallback, Debian's
# packaged kernel with its modules in the initramfs.
GUEST_KERNEL ?= source
# GUEST_CRUN=auto (default): crun linked statically from Debian's crun source
# package by guest/crun/build.sh (cached like the kernel; ~3x faster to start
# under TCG), Debian's dynamic crun if that build fails; static or debian
# force one.
GUEST_CRUN ?= auto
GUEST_DIR := $(BUILD)/guest/$(ARCH)
guest: $(GUEST_DIR)/initrd.img
# Rewritten only when the choice changes, so switching rebuilds the image.
$(GUEST_DIR)/.kernel-source: FORCE
	@mkdir -p $(dir $@)
	@echo $(GUEST_KERNEL) $(GUEST_CRUN) | cmp -s - $@ || echo $(GUEST_KERNEL) $(GUEST_CRUN) >$@
$(GUEST_DIR)/initrd.img: $(AGENT) guest/build.sh $(wildcard guest/* guest/kernel/* guest/kernel/patches/* guest/crun/*) $(GUEST_DIR)/.kernel-source
	guest/build.sh --arch $(ARCH) --agent $(AGENT) --out $(GUEST_DIR) --kernel $(GUEST_KERNEL) --crun $(GUEST_CRUN)

# ---- tests ----
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
$(BUILD)/tests/%: tests/unit/%.c tests/unit/harness.h $(HOST_LIB_ASAN)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) $(SAN) -O1 -o $@ $< $(HOST_LIB_ASAN) $(HOST_LDLIBS)

# Small C programs used by e2e tests and benchmarks (tests/tools/NAME.c -> build/tests/tools/NAME).
TEST_TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(wildcard tests/tools/*.c))
$(BUILD)/tests/tools/%: tests/tools/%.c $(HOST_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(HOST_LIB) $(HOST_LDLIBS)
# The hostile guest PID 1 of test_hostile_agent.py: static like runm-agent,
# and with nothing of runm linked in (it only borrows the wire constants).
$(BUILD)/tests/tools/hostile_agent: tests/tools/hostile_agent.c src/ttrpc/ttrpc.h src/vm/vm.h $(GEN)/.stamp
	@mkdir -p $(dir $@)
	$(CC) -static $(CPPFLAGS) $(CFLAGS) -o $@ $<

FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_LIB_SRC := $(COMMON_SRC) $(TTRPC_SRC) $(PROTO_SRC) $(ENGINE_SRC) $(VM_SRC) $(HOST_GEN)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC) $(GEN)/.stamp
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) -g -O1 -w -fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_LIB_SRC) $(HOST_LDLIBS)

unit: $(UNIT_TESTS) $(FUZZ_TARGETS) $(TEST_TOOLS)

test: deps all guest unit
	tests/run --fuzz-seconds 10

# Every decoder of outside input for FUZZ_SECONDS each (10 min), new coverage
# kept in tests/fuzz/corpus (minimised by libFuzzer's merge): make test's
# 10-second runs start from it. Not part of make test.
FUZZ_SECONDS ?= 600
fuzz: $(FUZZ_TARGETS)
	tests/run --only fuzz --fuzz-seconds $(FUZZ_SECONDS) --merge-corpus

bench: deps all guest
	bench/run

# Not part of `make test` (a short one is: tests/e2e/test_soak.py).
soak: deps all guest
	BUILD=$(BUILD) tests/soak.py

demo: deps all guest
	tests/demo.py

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/runm
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(GUEST_DIR)/vmlinuz $(GUEST_DIR)/initrd.img $(DESTDIR)$(PREFIX)/share/runm/

deps:
	@tools/deps.sh
deps-check:
	@command -v protoc-c >/dev/null || tools/deps.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h')

clean:
	rm -rf $(BUILD)

.PHONY: FORCE all guest unit test fuzz bench soak demo install deps deps-check format clean
.DELETE_ON_ERROR:
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
