# SpanDB: set-up and everyday commands. On a fresh Debian machine with a Rust
# toolchain, `make demo` or `make test` installs what is missing first.

CARGO ?= cargo
APT_PACKAGES := clang libclang-dev protobuf-compiler
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# psycopg 3, the Python driver the gateway's tests run, in its own venv.
PY_VENV ?= $(HOME)/.cache/spandb/venv
PSYCOPG := psycopg[binary]==3.3.9
export SPANDB_PYTHON := $(PY_VENV)/bin/python

.PHONY: all deps build demo check test sim bench jepsen fuzz clean

all: build

## deps: install the system packages the build needs (RocksDB's bindings need
## clang; gRPC code generation needs protoc) and the tests use (psql and
## pgbench, the PostgreSQL clients the gateway's tests drive; Debian ships
## pgbench in the server package; psycopg 3 in a venv), if any are missing.
deps:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install a Rust toolchain (https://rustup.rs)"; exit 1; }
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v psql >/dev/null || missing="$$missing postgresql-client"; \
	pgbench --version >/dev/null 2>&1 || missing="$$missing postgresql"; \
	python3 -c "import ensurepip" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $$missing; \
	fi
	@$(SPANDB_PYTHON) -c "import psycopg" >/dev/null 2>&1 || { \
		echo "installing: $(PSYCOPG) into $(PY_VENV)"; \
		python3 -m venv $(PY_VENV) && $(PY_VENV)/bin/pip install -q "$(PSYCOPG)"; }

build: deps
	$(CARGO) build --workspace

## demo: a local 3-server cluster (child processes on 127.0.0.1) and a shell.
demo: deps
	$(CARGO) run -p cli --bin spandb -- demo

## check: the house rules, before any test runs: formatting, clippy with
## warnings as errors, docs without broken links, the pure cores free of
## I/O crates, no unused dependency, no import cycle between modules
## (scripts/ says why each matters), every source file and name the docs
## point at exists.
check: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --features sql/testing -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps
	scripts/dependency_directions.sh
	python3 scripts/unused_deps.py
	python3 scripts/module_cycles.py
	python3 scripts/doc_references.py

## test: the house rules, then every test of the workspace in two tiers, so
## a failure in the first stops the rest: the pure cores (truetime, txn, sql,
## the jepsen checkers), then everything built on RocksDB: the server, its
## stepped and in-process clusters, the jepsen harness's own tests and the
## multi-process tests of the `spandb` binary (psql, pgbench, psycopg,
## tokio-postgres, the short jepsen runs). The second tier is one cargo
## command on purpose: any other split of those packages unifies their
## dependencies' features differently from `check`'s workspace build, and
## each different set is another 20-minute debug build of RocksDB.
test: deps check
	$(CARGO) test -p truetime -p meta -p txn -p sql -p jepsen
	$(CARGO) test -p proto -p spanserver -p placement -p client -p harness -p tests -p cli

## fuzz: the long pass of the request fuzzers (make test runs short ones):
## FUZZ_CASES generated requests, against an in-process cluster, every
## public RPC; then FUZZ_PG_CASES generated PostgreSQL message sequences
## against a local cluster's gateway. No server may panic or abort, every
## error must be typed. Vary FUZZ_SEED to explore further.
FUZZ_CASES ?= 100000
FUZZ_PG_CASES ?= 5000
FUZZ_SEED ?= 1
fuzz: deps
	SPANDB_FUZZ_CASES=$(FUZZ_CASES) SPANDB_FUZZ_SEED=$(FUZZ_SEED) $(CARGO) test -p tests -p cli --test cluster -- fuzz:: --nocapture
	SPANDB_PG_FUZZ_CASES=$(FUZZ_PG_CASES) SPANDB_PG_FUZZ_SEED=$(FUZZ_SEED) $(CARGO) test -p tests -p cli --test pg_drivers -- generated_protocol_messages

## sim: the stepped-cluster explorer: SEEDS seeded runs of whole clusters
## (real servers stepped by one thread, simulated time, skewed clocks,
## message loss, a partitioned leader, a server killed and restarted),
## Raft's safety checked after every step; then TXN_SEEDS runs of
## read-write transactions over two shards under pauses, crashes,
## partitions, clock jumps and leader transfers, checked for strict
## serializability (about 4 s each); then the 6.824 Raft scenarios
## (tests/tests/stepped_raft.rs) with RAFT_SEEDS seeds each; SPLIT_SEEDS
## runs of the transaction workload with shards splitting under it. A
## failure names its seed, and the same seed replays it exactly.
SEEDS ?= 200
TXN_SEEDS ?= 50
RAFT_SEEDS ?= 100
SPLIT_SEEDS ?= 30
sim: deps
	SPANDB_STEPPED_SEEDS=$(SEEDS) SPANDB_STEPPED_TXN_SEEDS=$(TXN_SEEDS) SPANDB_STEPPED_SPLIT_SEEDS=$(SPLIT_SEEDS) $(CARGO) test -p tests -p cli --test stepped -- --nocapture
	SPANDB_STEPPED_RAFT_SEEDS=$(RAFT_SEEDS) $(CARGO) test -p tests -p cli --test stepped_raft

## bench: the key-value benchmark on a local cluster, release build.
bench: deps
	$(CARGO) run --release -p cli --bin spandb -- bench kv --local --clients 1,64 --op put,get --duration 10

## jepsen: the long verification matrix for releases: every workload this
## build can run x every nemesis, x clocks skewed beyond epsilon, and x
## replicas moving (with kills and partitions, on 5 nodes),
## JEPSEN_TIME_LIMIT seconds each, against
## fresh local clusters. Stops at the first result that is not valid and
## says where its report is. Installs nothing (run `make deps` first on a
## fresh machine). Override any variable, e.g.
##   make jepsen JEPSEN_TIME_LIMIT=60 JEPSEN_NEMESES="kill partition"
JEPSEN_WORKLOADS ?= register set bank list-append timestamps
JEPSEN_NEMESES ?= kill pause partition clock leader-transfer split all
JEPSEN_TIME_LIMIT ?= 300
JEPSEN_CONCURRENCY ?= 10
JEPSEN_NODES ?= 3
JEPSEN_INTERVAL ?= 5
JEPSEN_STAMP := $(shell date +%Y%m%d-%H%M%S)
JEPSEN_OUT ?= target/jepsen-runs/$(JEPSEN_STAMP)
JEPSEN_CARGO_FLAGS ?=

jepsen:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install a Rust toolchain (https://rustup.rs)"; exit 1; }
	$(CARGO) build $(JEPSEN_CARGO_FLAGS) -p cli --bin spandb
	@for w in $(JEPSEN_WORKLOADS); do \
	  for n in $(JEPSEN_NEMESES); do \
	    out="$(JEPSEN_OUT)/$$w-$$n"; \
	    echo "== jepsen: $$w with nemesis $$n, $(JEPSEN_TIME_LIMIT) s, $(JEPSEN_NODES) nodes -> $$out"; \
	    $(CARGO) run -q $(JEPSEN_CARGO_FLAGS) -p cli --bin spandb -- jepsen --workload $$w --nemesis $$n \
	      --time-limit $(JEPSEN_TIME_LIMIT) --concurrency $(JEPSEN_CONCURRENCY) --nodes $(JEPSEN_NODES) \
	      --interval $(JEPSEN_INTERVAL) --out "$$out" \
	    || { echo "make jepsen: FAILED: $$w with nemesis $$n did not pass (see the lines above); report in $$out/report.html"; exit 1; }; \
	  done; \
	  out="$(JEPSEN_OUT)/$$w-clock-beyond-epsilon"; \
	  echo "== jepsen: $$w with clocks skewed beyond epsilon (servers must refuse, not answer wrongly) -> $$out"; \
	  $(CARGO) run -q $(JEPSEN_CARGO_FLAGS) -p cli --bin spandb -- jepsen --workload $$w --nemesis clock --beyond-epsilon \
	    --time-limit $(JEPSEN_TIME_LIMIT) --concurrency $(JEPSEN_CONCURRENCY) --nodes $(JEPSEN_NODES) \
	    --interval $(JEPSEN_INTERVAL) --out "$$out" \
	  || { echo "make jepsen: FAILED: $$w with clocks beyond epsilon did not pass; report in $$out/report.html"; exit 1; }; \
	  out="$(JEPSEN_OUT)/$$w-move"; \
	  echo "== jepsen: $$w with replicas moving (5 nodes, 3 replicas a shard) -> $$out"; \
	  $(CARGO) run -q $(JEPSEN_CARGO_FLAGS) -p cli --bin spandb -- jepsen --workload $$w --nemesis move,kill,partition \
	    --time-limit $(JEPSEN_TIME_LIMIT) --concurrency $(JEPSEN_CONCURRENCY) --nodes 5 \
	    --interval $(JEPSEN_INTERVAL) --out "$$out" \
	  || { echo "make jepsen: FAILED: $$w with moves did not pass; report in $$out/report.html"; exit 1; }; \
	  out="$(JEPSEN_OUT)/$$w-placement"; \
	  echo "== jepsen: $$w with the placement driver's faults and re-replication (5 nodes, dead after 2 s) -> $$out"; \
	  $(CARGO) run -q $(JEPSEN_CARGO_FLAGS) -p cli --bin spandb -- jepsen --workload $$w \
	    --nemesis kill,decommission,placement-partition,placement-kill,move --dead-after-s 2 \
	    --time-limit $(JEPSEN_TIME_LIMIT) --concurrency $(JEPSEN_CONCURRENCY) --nodes 5 \
	    --interval $(JEPSEN_INTERVAL) --out "$$out" \
	  || { echo "make jepsen: FAILED: $$w with placement faults did not pass; report in $$out/report.html"; exit 1; }; \
	done; \
	echo "make jepsen: every run valid ($(JEPSEN_WORKLOADS) x $(JEPSEN_NEMESES), and clocks beyond epsilon); reports in $(JEPSEN_OUT)"

clean:
	$(CARGO) clean
