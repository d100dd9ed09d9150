# The one way in, for people and CI alike: `make bench`, `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: install bench test test-rust lint test-python test-versions clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Builds the wheel (maturin, release profile) and installs it with every extra.
install: $(PY)
	$(PY) -m pip install -q ".[test,bench,lint,plot]"

bench: install
	$(PY) -m fastspawn.bench $(BENCH_ARGS)

test-rust:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo test --no-default-features

lint: install
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	cd python && ../$(VENV)/bin/mypy --strict -p fastspawn
	# From the top level, so the installed package (with its compiled _core) is checked.
	$(PY) -m mypy.stubtest fastspawn._core

test-python: install
	# Once with asyncio's debug mode, once through the fallback reaper (no pidfd),
	# then everything, the stdlib conformance suite on every installed Python included.
	PYTHONASYNCIODEBUG=1 $(PYTEST) -q tests --ignore=tests/test_stdlib_conformance.py
	FASTSPAWN_NO_PIDFD=1 $(PYTEST) -q tests/test_process.py tests/test_lifecycle.py
	$(PYTEST) tests

# The same suite (but the conformance suite, which already covers them) on every other
# installed Python >= 3.11, each in a venv of its own with the same abi3 wheel, and the
# fallback reaper's part of it.
test-versions: install
	rm -rf $(VENV)/wheel
	$(PY) -m pip wheel -q --no-deps -w $(VENV)/wheel .
	set -e; for exe in $$($(PY) tests/pythons.py --others); do \
		version=$$($$exe -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
		echo "== Python $$version ($$exe)"; \
		$$exe -m venv --clear $(VENV)-$$version; \
		$(VENV)-$$version/bin/python -m pip install -q "$$(ls $(VENV)/wheel/fastspawn-*.whl)[test,bench]"; \
		$(VENV)-$$version/bin/python -m pytest -p no:cacheprovider -q tests --ignore=tests/test_stdlib_conformance.py; \
		FASTSPAWN_NO_PIDFD=1 $(VENV)-$$version/bin/python -m pytest -p no:cacheprovider -q tests/test_process.py tests/test_lifecycle.py; \
	done

test: test-rust lint test-python test-versions

clean:
	rm -rf $(VENV) target dist
