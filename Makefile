# Twine: `make run` sets up and runs the echo server; `make test` sets up and runs every test.
SHELL := /bin/bash
SWIFT ?= swift
# Debian packages: the library needs libevent-dev, libssl-dev (TLS) and pkg-config; the tests need the
# peer programs (openssl: test certificates and s_client).
BUILD_PACKAGES := libevent-dev libssl-dev pkg-config
TEST_PACKAGES := $(BUILD_PACKAGES) netcat-openbsd python3 procps util-linux gcc make openssl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TWINE_RELEASE := .build/release/twine
PORT ?= 8025
FUZZ_SECONDS ?= 60

.PHONY: all build run test test-debug test-asan smoke fuzz fuzz-smoke deps-build deps-test bench bench-quick format lint clean

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

# The whole suite: unit and loopback tests, again under AddressSanitizer, a short fuzz of each
# framing parser, then the benchmark harness smoke.
test: deps-test test-debug test-asan fuzz-smoke smoke

test-debug:
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

test-asan:
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(abspath .lsan-suppressions) \
	  $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan

# libFuzzer on each framing parser (LineReceiver, NetstringReceiver, Int32StringReceiver): see Fuzz/Makefile.
fuzz:
	$(MAKE) -C Fuzz fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

fuzz-smoke:
	$(MAKE) -C Fuzz fuzz-smoke

smoke: build
	$(MAKE) -C Benchmarks smoke TWINE=$(abspath $(TWINE_RELEASE))

# The full matrix (~12 min): writes BENCHMARKS.md and benchmarks.svg here. Never run in CI.
bench: build
	$(MAKE) -C Benchmarks bench TWINE=$(abspath $(TWINE_RELEASE)) OUT=$(abspath BENCHMARKS.md)

# A short run for use while developing (< 2 min); writes Benchmarks/BENCHMARKS-quick.md.
bench-quick: build
	$(MAKE) -C Benchmarks bench-quick TWINE=$(abspath $(TWINE_RELEASE)) OUT=$(abspath Benchmarks/BENCHMARKS-quick.md)

format:
	$(SWIFT) format --in-place --recursive Sources Tests Fuzz Package.swift

lint:
	$(SWIFT) format lint --recursive Sources Tests Fuzz

clean:
	rm -rf .build .build-asan
