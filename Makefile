# edgetls — one non-recursive Makefile.
#
#   make                     build/bin/spoa-mtls (and the other programs)
#   make SANITIZE=address,undefined   the same under ASan/UBSan, in build/san/
#   make test                install missing Debian packages, build, run every test
#   make fuzz                run the libFuzzer targets (FUZZ_SECONDS each, default 60)
#   make bench               the benchmarks (figures, not pass/fail)
#   make format / format-check

BUILD ?= build
SANITIZE ?=
ifneq ($(SANITIZE),)
BUILD := build/san
endif

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)
CC ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g

WARN := -std=c17 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wvla -Wimplicit-fallthrough -Werror
HARDEN := -fstack-protector-strong -fPIE -fno-strict-aliasing
LDHARDEN := -pie -Wl,-z,relro,-z,now
ifneq ($(SANITIZE),)
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
HARDEN += -D_FORTIFY_SOURCE=2
endif

# bookworm's libev ships no .pc file: fall back to -lev.
EV_CFLAGS := $(shell $(PKG_CONFIG) --cflags libev 2>/dev/null)
EV_LIBS := $(shell $(PKG_CONFIG) --libs libev 2>/dev/null || echo -lev)
MHD_LIBS = $(shell $(PKG_CONFIG) --libs libmicrohttpd)
CMOCKA_LIBS = $(shell $(PKG_CONFIG) --libs cmocka)
SSL_LIBS = $(shell $(PKG_CONFIG) --libs libssl libcrypto)
# certsync's libraries (libconfig, jansson, libcurl, ldns, protobuf-c).
CS_LIBS = $(shell $(PKG_CONFIG) --libs libconfig jansson libcurl libprotobuf-c ldns)
PB_LIBS = $(shell $(PKG_CONFIG) --libs libprotobuf-c)
ALL_LIBS = $(CS_LIBS) $(SSL_LIBS) $(EV_LIBS) $(MHD_LIBS) -lpthread -lm

GEN := $(BUILD)/gen
CPPFLAGS += -D_GNU_SOURCE -Ilib -Iagent -Icertsync -I$(GEN) -DEDGETLS_VERSION='"$(VERSION)"' $(EV_CFLAGS)
ALL_CFLAGS = $(WARN) $(HARDEN) $(SANFLAGS) $(CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDHARDEN) $(SANFLAGS) $(LDFLAGS)

LIB_SRC := $(sort $(wildcard lib/*.c))
AGENT_SRC := $(filter-out agent/main.c,$(sort $(wildcard agent/*.c)))
CERTSYNC_SRC := $(filter-out certsync/main.c,$(sort $(wildcard certsync/*.c)))
# Every tests/unit/test_*.c is a cmocka program linked against all three archives.
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(sort $(wildcard tests/unit/test_*.c)))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_A := $(BUILD)/libedgetls.a
AGENT_A := $(BUILD)/libagent.a
CERTSYNC_A := $(BUILD)/libcertsync.a
SPOA := $(BUILD)/bin/spoa-mtls
CERTSYNC := $(BUILD)/bin/certsync
BENCH := $(BUILD)/bin/spop-bench
CONFORMANCE := $(BUILD)/tests/conformance
UNIT_BINS := $(addprefix $(BUILD)/tests/,$(UNIT_TESTS))

.PHONY: all test unit conformance e2e fuzz fuzz-smoke bench format format-check clean deps

CS_BENCH := $(BUILD)/bin/cs-bench
TLS_BENCH := $(BUILD)/bin/tls-bench
MTLS_VERIFY := $(BUILD)/bin/mtls-verify

all: $(SPOA) $(BENCH) $(CERTSYNC) $(CS_BENCH) $(TLS_BENCH) $(MTLS_VERIFY)

$(BUILD)/obj/%.o: %.c | $(GEN)/policy.pb-c.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

# The policy snapshot schema (protobuf-c), generated into the build directory.
$(GEN)/policy.pb-c.c $(GEN)/policy.pb-c.h &: lib/policy.proto
	@mkdir -p $(GEN)
	protoc-c --proto_path=lib --c_out=$(GEN) $<

$(BUILD)/obj/gen/policy.pb-c.o: $(GEN)/policy.pb-c.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(filter-out -Wmissing-prototypes,$(ALL_CFLAGS)) -c -o $@ $<

$(LIB_A): $(call obj,$(LIB_SRC)) $(BUILD)/obj/gen/policy.pb-c.o
	@rm -f $@
	ar rcs $@ $^

$(AGENT_A): $(call obj,$(AGENT_SRC))
	@rm -f $@
	ar rcs $@ $^

$(CERTSYNC_A): $(call obj,$(CERTSYNC_SRC))
	@rm -f $@
	ar rcs $@ $^

$(SPOA): $(call obj,agent/main.c) $(AGENT_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PB_LIBS) $(SSL_LIBS) $(EV_LIBS) $(MHD_LIBS) -lpthread

$(CERTSYNC): $(call obj,certsync/main.c) $(CERTSYNC_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

$(BENCH): $(call obj,tests/bench/spop-bench.c) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(EV_LIBS) -lpthread -lm

$(TLS_BENCH): $(call obj,tests/bench/tls-bench.c) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(SSL_LIBS) -lpthread

$(MTLS_VERIFY): $(call obj,tests/bench/mtls-verify.c) $(AGENT_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PB_LIBS) $(SSL_LIBS)

$(CS_BENCH): $(call obj,tests/bench/cs-bench.c) $(CERTSYNC_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

$(BUILD)/tests/test_%: $(call obj,tests/unit/test_%.c) $(AGENT_A) $(CERTSYNC_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(ALL_LIBS)

$(CONFORMANCE): $(call obj,tests/e2e/conformance.c) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(ALL_LIBS)

E2E_DRIVERS := $(BUILD)/tests/dnsdrv $(BUILD)/tests/acmedrv

# The driver of certsync's DNS modules that tests/e2e/dns_checks.sh runs.
$(BUILD)/tests/dnsdrv: $(call obj,tests/e2e/dnsdrv.c) $(CERTSYNC_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

# The ACME client driver of tests/e2e/acme_client.sh (Pebble and the ARI stand-in).
$(BUILD)/tests/acmedrv: $(call obj,tests/e2e/acmedrv.c) $(CERTSYNC_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

deps:
	@scripts/deps.sh test

# The README's test command: packages, both builds, then every suite (tests/run.sh prints
# the closing "N passed, N failed").
test: deps
	$(MAKE) all $(UNIT_BINS) $(CONFORMANCE) $(E2E_DRIVERS)
	$(MAKE) SANITIZE=address,undefined all $(patsubst build/%,build/san/%,$(UNIT_BINS)) \
		build/san/tests/conformance
	tests/run.sh

unit: $(UNIT_BINS)
	tests/run.sh unit

conformance: $(SPOA) $(CONFORMANCE)
	tests/run.sh conformance

e2e: all $(E2E_DRIVERS)
	tests/run.sh e2e

# libFuzzer needs clang; the targets link the same sources, instrumented.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilib -Iagent \
	-Ibuild/fuzz/gen -DEDGETLS_VERSION='"fuzz"'
FUZZ_BIN := build/fuzz/fuzz_spop
# The target drives the agent's engine and handlers: every agent and lib source, instrumented.
FUZZ_SRC := tests/fuzz/fuzz_spop.c $(filter-out agent/main.c,$(wildcard agent/*.c)) \
	$(wildcard lib/*.c) build/fuzz/gen/policy.pb-c.c

build/fuzz/gen/policy.pb-c.c: lib/policy.proto
	@mkdir -p $(@D)
	protoc-c --proto_path=lib --c_out=$(@D) $<

$(FUZZ_BIN): $(FUZZ_SRC) $(wildcard lib/*.h agent/*.h)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $(FUZZ_SRC) $(SSL_LIBS) $(PB_LIBS) $(MHD_LIBS) $(EV_LIBS) -lpthread

fuzz: $(FUZZ_BIN)
	@mkdir -p build/fuzz/corpus
	$(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) -max_len=20000 \
		build/fuzz/corpus tests/fuzz/corpus

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=20

bench: all
	BUILD=$(BUILD) tests/bench/run.sh
	BUILD=$(BUILD) tests/bench/certsync.sh
	BUILD=$(BUILD) tests/bench/mtls.sh
	BUILD=$(BUILD) tests/bench/acme.sh

format:
	clang-format -i $(wildcard lib/*.[ch] agent/*.[ch] certsync/*.[ch] tests/*/*.[ch])

format-check:
	clang-format --dry-run --Werror $(wildcard lib/*.[ch] agent/*.[ch] certsync/*.[ch] \
		tests/*/*.[ch])

clean:
	rm -rf build

# Fragments for packaging and docs targets (install, compose checks...): same make, one file each.
-include $(sort $(wildcard mk/*.mk))

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# The README's first command: the whole stack on loopback, and a tour of it.
.PHONY: demo demo-stop
demo:
	@scripts/demo.sh start

demo-stop:
	@scripts/demo.sh stop
