# The one way in, for people and CI alike: `make bench`, `make test` (and `make dev` for
# the inner loop).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider
DIST := dist
EXTRAS := test,bench,lint,plot
# The interpreter the abi3t wheel (PEP 803, CPython 3.15+) is built for and tested on.
PY315 := .pythons/3.15/usr/bin/python3.15
# pyo3's build configuration for a free-threaded 3.14 (3.14t), with no interpreter: a
# build check only (no free-threaded interpreter can be had on these machines).
PYO3_314T := target/pyo3-3.14t.cfg

.PHONY: pythons dev dist install bench benches test test-rust check-builds lint test-python test-stock-streams test-versions test-abi3t test-pure test-others clean

# CPython 3.14 and 3.15 from Debian's packages into .pythons/ (see tools/get-pythons.sh).
pythons:
	bash tools/get-pythons.sh 3.14 3.15

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Inner loop: a debug build installed in place (`maturin develop`), with every extra.
dev: $(PY)
	$(PY) -m pip install -q "maturin>=1.14,<2"
	$(VENV)/bin/maturin develop -q --extras $(EXTRAS)

# The release artefacts, in dist/: the abi3 wheel (every CPython >= 3.11) and the abi3t
# wheel (3.15+, GIL or free-threaded), both manylinux2014 (glibc >= 2.17) by linking with
# zig (ziglang, from PyPI), and the sdist. auditwheel checks the platform tag, abi3audit
# that the abi3 wheel uses only the stable ABI.
dist: $(PY) pythons
	$(PY) -m pip install -q "maturin>=1.14,<2" ziglang auditwheel abi3audit
	rm -rf $(DIST)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/maturin build --release -q --zig --compatibility manylinux2014 -o $(DIST)/abi3
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/maturin build --release -q --zig --compatibility manylinux2014 \
		--no-default-features --features python,abi3t -i $(PY315) -o $(DIST)/abi3t
	$(VENV)/bin/maturin sdist -o $(DIST)
	for wheel in $(DIST)/abi3/*.whl $(DIST)/abi3t/*.whl; do \
		report=$$($(VENV)/bin/auditwheel show $$wheel); echo "$$report"; \
		echo "$$report" | tr -d '\n' | grep -q '"manylinux_2_17_x86_64"' || exit 1; \
	done
	$(VENV)/bin/abi3audit --strict --report $(DIST)/abi3/*.whl

# The abi3 wheel, installed with every extra.
install: dist
	$(PY) -m pip install -q "$$(ls $(DIST)/abi3/*.whl)[$(EXTRAS)]"
	$(PY) -m pip install -q --force-reinstall --no-deps $(DIST)/abi3/*.whl

bench: install
	$(PY) -m fastspawn.bench $(BENCH_ARGS)

# The same workloads under pytest-benchmark (small sizes, one process).
benches: install
	$(PY) -m pytest benches --benchmark-only -q

test-rust:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo test --no-default-features

# The other builds compile cleanly: abi3t, and a version-specific free-threaded 3.14t.
check-builds:
	CARGO_TARGET_DIR=target/abi3t cargo clippy --all-targets --no-default-features --features python,abi3t -- -D warnings
	mkdir -p target
	printf 'version=3.14\nbuild_flags=Py_GIL_DISABLED\nsuppress_build_script_link_lines=true\n' > $(PYO3_314T)
	PYO3_CONFIG_FILE=$(CURDIR)/$(PYO3_314T) CARGO_TARGET_DIR=target/3.14t cargo clippy --all-targets --no-default-features --features python -- -D warnings

lint: install
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	cd python && ../$(VENV)/bin/mypy --strict -p fastspawn
	# The pure-Python fallback as on the platforms it is for (checked above only for Linux).
	cd python && for platform in win32 darwin; do ../$(VENV)/bin/mypy --strict --follow-imports=silent --platform $$platform -m fastspawn._fallback; done
	# From the top level, so the installed package (with its compiled _core) is checked.
	$(PY) -m mypy.stubtest fastspawn._core

test-python: install
	# Once with asyncio's debug mode, once through the fallback reaper (no pidfd),
	# then everything, the stdlib conformance suite on every installed Python included.
	PYTHONASYNCIODEBUG=1 $(PYTEST) -q tests --ignore=tests/test_stdlib_conformance.py
	FASTSPAWN_NO_PIDFD=1 $(PYTEST) -q tests/test_process.py tests/test_lifecycle.py
	$(PYTEST) tests

# The whole suite once more with asyncio's own StreamReader, protocol and communicate()
# (what a Python outside fastspawn._private.VERIFIED gets).
test-stock-streams: install
	FASTSPAWN_STOCK_STREAMS=1 $(PYTEST) -q tests --ignore=tests/test_stdlib_conformance.py

# The same suite (but the conformance suite, which already covers them) on every other
# installed Python >= 3.11 (3.14 and 3.15 from `make pythons` among them), each in a venv
# of its own with the same abi3 wheel, and the fallback reaper's part of it.
test-versions: install
	set -e; for exe in $$($(PY) tests/pythons.py --others); do \
		version=$$($$exe -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
		echo "== Python $$version ($$exe)"; \
		$$exe -m venv --clear $(VENV)-$$version; \
		$(VENV)-$$version/bin/python -m pip install -q "$$(ls $(DIST)/abi3/*.whl)[test,bench]"; \
		$(VENV)-$$version/bin/python -m pytest -p no:cacheprovider -q tests --ignore=tests/test_stdlib_conformance.py; \
		FASTSPAWN_NO_PIDFD=1 $(VENV)-$$version/bin/python -m pytest -p no:cacheprovider -q tests/test_process.py tests/test_lifecycle.py; \
	done

# The abi3t wheel on (GIL-enabled) 3.15: the whole suite but the conformance suite.
test-abi3t: install
	$(PY315) -m venv --clear $(VENV)-3.15-abi3t
	$(VENV)-3.15-abi3t/bin/python -m pip install -q "$$(ls $(DIST)/abi3t/*.whl)[test,bench]"
	$(VENV)-3.15-abi3t/bin/python -c 'import fastspawn._core as c, sys; assert ".abi3t" in c.__file__, c.__file__'
	$(VENV)-3.15-abi3t/bin/python -m pytest -p no:cacheprovider -q tests --ignore=tests/test_stdlib_conformance.py

# The pure-Python fallback wheel (py3-none-any: the abi3 wheel without its core, what pip
# installs where no platform wheel fits: macOS, Windows, musl, other CPUs) in a venv of
# its own: fastspawn imports and works as asyncio's own spawner (tests/test_fallback.py).
test-pure: install
	$(PY) -m pip install -q wheel
	rm -rf $(DIST)/pure
	PYTHON=$(PY) bash tools/pure-wheel.sh "$$(ls $(DIST)/abi3/*.whl)" $(DIST)/pure
	$(PYTHON) -m venv --clear $(VENV)-pure
	$(VENV)-pure/bin/python -m pip install -q $(DIST)/pure/*.whl pytest pytest-timeout anyio hypothesis
	FASTSPAWN_EXPECT_NO_CORE=pure $(VENV)-pure/bin/python -m pytest -p no:cacheprovider -q -rs tests/test_fallback.py

# Other projects' own subprocess tests against install(): anyio's and uvloop's (asyncio
# loop) at pinned versions, from their sdists on PyPI (tools/other-suites.sh).
test-others: install
	bash tools/other-suites.sh $(PYTHON) "$$(ls $(DIST)/abi3/*.whl)"

test: test-rust check-builds lint test-python test-stock-streams test-versions test-abi3t test-pure test-others

clean:
	rm -rf $(VENV) $(VENV)-* target $(DIST)
