# Faceplate: `make demo` and `make test` set everything up themselves on a fresh Debian 12
# machine (a venv at .venv with the `faceplate` command), and are quick when already set up.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.faceplate-installed
MEDIA_STAMP := $(VENV)/.faceplate-media
export FACEPLATE_CACHE ?= $(HOME)/.cache/faceplate

.PHONY: setup media test test-fast lint demo bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt setup.py pyproject.toml python_core/faceplate/extract/_ert.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools<81" wheel
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -r requirements-nodeps.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import faceplate, faceplate.extract._ert, mediapipe, dlib, cv2, av, OpenImageIO, torch"
	touch $(STAMP)

media: $(MEDIA_STAMP)

$(MEDIA_STAMP): $(STAMP) python_core/faceplate/io/samples.py
	$(VENV)/bin/faceplate fetch-media
	touch $(MEDIA_STAMP)

lint: setup
	$(VENV)/bin/ruff check python_core tests benchmarks tools
	$(VENV)/bin/mypy

test: setup media lint
	$(VENV)/bin/pytest -q

test-fast: setup media
	$(VENV)/bin/pytest -q -m "not slow" -x

demo: setup media
	$(VENV)/bin/faceplate demo --output demo_out

bench: setup media
	$(PY) benchmarks/extract.py --output bench_out/extract.json
	$(PY) benchmarks/train.py --output bench_out/train.json
	$(PY) benchmarks/convert.py --output bench_out/convert.json
	$(PY) benchmarks/ofx.py --output bench_out/ofx.json
	$(PY) benchmarks/provenance.py --output bench_out/provenance.json

# The OpenFX bundle: build/ofx/ofx_plugin/Faceplate.ofx.bundle (needs cmake and a C++17 compiler).
.PHONY: ofx install-ofx
OFX_BUILD := build/ofx
OFX_BUNDLE := $(OFX_BUILD)/ofx_plugin/Faceplate.ofx.bundle

ofx: setup
	cmake -S . -B $(OFX_BUILD) -DCMAKE_BUILD_TYPE=Release -DFACEPLATE_PYTHON=$(CURDIR)/$(VENV)/bin/python
	cmake --build $(OFX_BUILD) -j2 --target FaceplateOFX
	@echo "built $(OFX_BUNDLE)"

# Installs into the first entry of OFX_PLUGIN_PATH, else ~/.local/share/OFX/Plugins.
install-ofx: ofx
	@dest="$${OFX_PLUGIN_PATH%%:*}"; dest="$${dest:-$(HOME)/.local/share/OFX/Plugins}"; \
	mkdir -p "$$dest" && rm -rf "$$dest/Faceplate.ofx.bundle" && \
	cp -a $(OFX_BUNDLE) "$$dest/" && echo "installed $$dest/Faceplate.ofx.bundle"

clean:
	rm -rf build dist demo_out bench_out .pytest_cache .mypy_cache .ruff_cache
