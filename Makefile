# Twine: `make run` sets up and runs the echo server; `make test` sets up and runs every test.
SHELL := /bin/bash
SWIFT ?= swift
# Debian packages: the library needs libevent-dev, libssl-dev (TLS) and pkg-config; the tests need the
# peer programs (openssl: test certificates and s_client; haproxy: the PROXY protocol's real sender).
BUILD_PACKAGES := libevent-dev libssl-dev pkg-config
TEST_PACKAGES := $(BUILD_PACKAGES) netcat-openbsd python3 procps util-linux gcc make openssl haproxy
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TWINE_RELEASE := .build/release/twine
PORT ?= 8025
FUZZ_SECONDS ?= 60

.PHONY: all build run test test-debug test-asan smoke fuzz fuzz-smoke deps-build deps-test bench bench-quick format lint clean
.PHONY: install c-host test-c-host docs swift-template

all: build

# Installs only what is missing, with one `apt-get update` first; a second run does nothing.
define apt_install
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps-build:
	$(call apt_install,$(BUILD_PACKAGES))

deps-test:
	$(call apt_install,$(TEST_PACKAGES))

build: deps-build
	$(SWIFT) build -c release --product twine

run: build
	$(TWINE_RELEASE) echo --port $(PORT)

# The whole suite: the format lint, unit and loopback tests (built with the import check), the
# DocC catalogs, the tests again under AddressSanitizer, a short fuzz of each framing parser, the
# example C host, then the benchmark harness smoke.
test: deps-test lint test-debug docs test-asan test-tsan fuzz-smoke test-c-host smoke faults-smoke

# --explicit-target-dependency-import-check error: a target that imports a module of this package
# without declaring it a dependency fails the build (it would build here only by luck of order).
test-debug:
	$(SWIFT) build --build-tests --explicit-target-dependency-import-check error
	$(SWIFT) test --skip-build

test-asan:
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(abspath .lsan-suppressions) \
	  $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan

# libFuzzer on each framing parser (LineReceiver, NetstringReceiver, Int32StringReceiver) and the PROXY
# protocol header parser (ProxyHeaderParser): see Fuzz/Makefile.
fuzz:
	$(MAKE) -C Fuzz fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz-smoke:
	$(MAKE) -C Fuzz fuzz-smoke

smoke: build c-host
	$(MAKE) -C Benchmarks smoke TWINE=$(abspath $(TWINE_RELEASE)) C_HOST=$(abspath $(C_HOST))

# The full matrix (~12 min): writes BENCHMARKS.md and benchmarks.svg here. Never run in CI.
bench: build c-host
	$(MAKE) -C Benchmarks bench TWINE=$(abspath $(TWINE_RELEASE)) C_HOST=$(abspath $(C_HOST)) OUT=$(abspath BENCHMARKS.md)
	$(MAKE) -C Benchmarks allocs TWINE=$(abspath $(TWINE_RELEASE))

# A short run for use while developing (< 2 min); writes Benchmarks/BENCHMARKS-quick.md.
bench-quick: build c-host
	$(MAKE) -C Benchmarks bench-quick TWINE=$(abspath $(TWINE_RELEASE)) C_HOST=$(abspath $(C_HOST)) \
	  OUT=$(abspath Benchmarks/BENCHMARKS-quick.md)

# The C API (Sources/CTwineAPI/install.sh): DIR/include/twine.h, DIR/lib/libtwine.{a,so},
# DIR/lib/pkgconfig/twine.pc (and twine-static.pc). Then: cc host.c $$(pkg-config --cflags --libs twine)
PREFIX ?= /usr/local
install: deps-build
	SWIFT=$(SWIFT) Sources/CTwineAPI/install.sh "$(PREFIX)"

# The example C host (Examples/c-host), built against a C API installed under .build/c-api.
C_API := .build/c-api
C_HOST := .build/c-host/host
c-host: deps-build
	SWIFT=$(SWIFT) Sources/CTwineAPI/install.sh $(C_API) release .build
	$(MAKE) -C Examples/c-host PREFIX=$(abspath $(C_API)) OUT=$(abspath $(dir $(C_HOST)))

# Examples/swift-protocol-template: a team's own Swift protocol and Twine's C API in ONE library
# (libgreeter.{a,so} + greeter.h + twine.h + greeter.pc under .build/greeter), and the example
# host linked with it instead of libtwine (.build/c-host/host-greeter, and host-greeter-static with
# libgreeter.a), which serves "greeter".
TEMPLATE := Examples/swift-protocol-template
GREETER := .build/greeter
TEMPLATE_CONFIG ?= release
swift-template: deps-build
	SWIFT=$(SWIFT) TWINE_PACKAGE_DIR=$(abspath $(TEMPLATE)) TWINE_PRODUCT=GreeterCAPI TWINE_LIB=greeter \
	  TWINE_HEADERS=$(abspath $(TEMPLATE)/include/greeter.h) TWINE_EXPORTS=$(abspath $(TEMPLATE)/exports.map) \
	  TWINE_VERSION=1.0.0 Sources/CTwineAPI/install.sh $(GREETER) $(TEMPLATE_CONFIG) .build/template
	$(MAKE) -C Examples/c-host GREETER=$(abspath $(GREETER)) OUT=$(abspath $(dir $(C_HOST))) \
	  $(abspath $(dir $(C_HOST)))/host-greeter $(abspath $(dir $(C_HOST)))/host-greeter-static

# The C host driven as a real process (Tests/c-host/test_c_host.py), with the C API's own C
# tests (api_test.c, protocol_test.c, threads_test.c); then again with AddressSanitizer on
# both sides: libtwine built with --sanitize=address and the host compiled by the toolchain's
# clang (its ASan runtime is the one Swift's instrumentation expects); then the C tests with
# ThreadSanitizer the same way (threads_test.c: 4 host threads, one reactor per base).
TOOLCHAIN_CLANG := $(dir $(realpath $(shell command -v swiftc)))clang
# ThreadSanitizer's runtime (the toolchain's) intercepts libdispatch: a C program linking it needs these.
TOOLCHAIN_SWIFT_LIBDIR := $(dir $(realpath $(shell command -v swiftc)))../lib/swift/linux
# The template's library in debug here: a second package build, and a debug one costs CI ~1 min.
test-c-host: TEMPLATE_CONFIG = debug
test-c-host: c-host swift-template
	python3 Tests/c-host/test_c_host.py --bin $(dir $(C_HOST)) --prefix $(C_API) --greeter $(GREETER)
	SWIFT=$(SWIFT) Sources/CTwineAPI/install.sh .build-asan/c-api debug .build-asan asan
	$(MAKE) -C Examples/c-host PREFIX=$(abspath .build-asan/c-api) OUT=$(abspath .build-asan/c-host) \
	  CC=$(TOOLCHAIN_CLANG) CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g -O1 -fuse-ld=bfd" \
	  $(abspath .build-asan/c-host/host)
	ASAN_OPTIONS=detect_leaks=1 python3 Tests/c-host/test_c_host.py --bin .build-asan/c-host --prefix .build-asan/c-api --asan \
	  --cc "$(TOOLCHAIN_CLANG) -fsanitize=address -fno-omit-frame-pointer -g -O1 -fuse-ld=bfd"
	SWIFT=$(SWIFT) Sources/CTwineAPI/install.sh .build-tsan/c-api debug .build-tsan tsan
	TSAN_OPTIONS="halt_on_error=1 suppressions=$(abspath .tsan-suppressions)" \
	  python3 Tests/c-host/test_c_host.py --prefix .build-tsan/c-api --tsan \
	  --cc "$(TOOLCHAIN_CLANG) -fsanitize=thread -fno-omit-frame-pointer -g -O1 -fuse-ld=bfd" \
	  --ldflags "-L$(TOOLCHAIN_SWIFT_LIBDIR) -Wl,-rpath,$(TOOLCHAIN_SWIFT_LIBDIR) -ldispatch -lBlocksRuntime"

# DocC for TwineCore, TwineProtocols, TwineTesting and Twine under .build/docs, with the toolchain's
# docc (no swift-docc-plugin dependency; see Scripts/docs.sh): a broken link in a catalog fails.
docs:
	SWIFT=$(SWIFT) Scripts/docs.sh .build/docs

format:
	$(SWIFT) format --in-place --recursive Sources Tests Fuzz Package.swift

# --strict: a lint warning fails `make test` (and so CI); `make format` fixes most of them.
lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Fuzz Package.swift

# --- Faults, soak, ThreadSanitizer (issue 11 items 7-9) -------------------------------------
# faults: the release twine under Faults/faultshim.so (LD_PRELOAD: accept/recv/send/epoll_ctl/
# libevent's malloc/SSL_read fail at seeded rates), driven by Faults/run_faults.py; faults-smoke is
# the short run make test makes. soak: SOAK_MINUTES (10) of churn, 10,000 idle connections and a
# 1,000-user chat, sampled into soak.csv/soak.svg; never in make test.
# test-tsan: the suites that cross threads (callFromThread, the C API from threads, peer threads).
FAULT_SHIM := .build/faults/faultshim.so
FAULT_SEED ?= 42
SOAK_MINUTES ?= 10
TSAN_SUITES := ReactorTests|HalfCloseTests|AdoptTests|CAPITests|HostileLoopbackTests|ReactorGroupTests|GroupAdmissionTests|ChatAcrossReactorsTests|DrainTests|ReactorServiceTests|ReactorExecutorTests|TimeAndBridgeTests
.PHONY: faults faults-smoke soak test-tsan

$(FAULT_SHIM): Faults/faultshim.c
	@mkdir -p $(dir $@)
	cc -O2 -Wall -Wextra -shared -fPIC -o $@ $< -ldl

faults: build $(FAULT_SHIM)
	$(MAKE) -C Benchmarks bin/loadgen
	python3 Faults/run_faults.py --twine $(TWINE_RELEASE) --shim $(FAULT_SHIM) \
	  --loadgen Benchmarks/bin/loadgen --seed $(FAULT_SEED)

faults-smoke: build $(FAULT_SHIM)
	$(MAKE) -C Benchmarks bin/loadgen
	python3 Faults/run_faults.py --twine $(TWINE_RELEASE) --shim $(FAULT_SHIM) \
	  --loadgen Benchmarks/bin/loadgen --seed $(FAULT_SEED) --smoke

soak: build
	$(MAKE) -C Benchmarks bin/loadgen
	python3 Faults/soak.py --twine $(TWINE_RELEASE) --loadgen Benchmarks/bin/loadgen \
	  --minutes $(SOAK_MINUTES) --out $(abspath .)

test-tsan:
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS="halt_on_error=1 suppressions=$(abspath .tsan-suppressions)" \
	  $(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan --filter '$(TSAN_SUITES)'

clean:
	rm -rf .build .build-asan .build-tsan
