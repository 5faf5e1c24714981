# SpanDB: set-up and everyday commands. On a fresh Debian machine with a Rust
# toolchain, `make demo` or `make test` installs what is missing first.

CARGO ?= cargo
APT_PACKAGES := clang libclang-dev protobuf-compiler
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build demo test bench clean

all: build

## deps: install the system packages the build needs (RocksDB's bindings need
## clang; gRPC code generation needs protoc), if any are missing.
deps:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install a Rust toolchain (https://rustup.rs)"; exit 1; }
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $$missing; \
	fi

build: deps
	$(CARGO) build --workspace

## demo: a local 3-server cluster (child processes on 127.0.0.1) and a shell.
demo: deps
	$(CARGO) run -p cli --bin spandb -- demo

## test: every test of the workspace (unit, in-process clusters, multi-process).
test: deps
	$(CARGO) test --workspace

## bench: the key-value benchmark on a local cluster, release build.
bench: deps
	$(CARGO) run --release -p cli --bin spandb -- bench kv --local --clients 1,64 --op put,get --duration 10

clean:
	$(CARGO) clean
