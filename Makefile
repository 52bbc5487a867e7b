# Faceplate: `make demo` and `make test` set everything up themselves on a fresh Debian 12
# machine (a venv at .venv with the `faceplate` command), and are quick when already set up.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.faceplate-installed
MEDIA_STAMP := $(VENV)/.faceplate-media
export FACEPLATE_CACHE ?= $(HOME)/.cache/faceplate
# The real-Natron tests and the demo's Natron render use this NatronRenderer when it exists.
export FACEPLATE_NATRON ?= $(wildcard $(HOME)/.cache/faceplate-natron/bin/NatronRenderer)

.PHONY: setup media test test-fast lint demo bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt setup.py pyproject.toml python_core/faceplate/extract/_ert.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools<81" wheel
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -r requirements-nodeps.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@# mediapipe through Faceplate's own loader, which builds a graph (a real check) and keeps
	@# mediapipe's harmless protobuf-6 "GetPrototype" line and absl warnings off the console.
	$(PY) -c "import faceplate, faceplate.extract._ert, dlib, cv2, av, OpenImageIO, torch; \
	  from faceplate.extract import mediapipe_graphs as g; g.face_detection(0.5)"
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

# With a NatronRenderer (make natron) the demo also renders through the OpenFX bundle.
demo: setup media $(if $(FACEPLATE_NATRON),ofx)
	$(VENV)/bin/faceplate demo --output demo_out

bench: setup media
	$(PY) benchmarks/extract.py --output bench_out/extract.json
	$(PY) benchmarks/detect.py --output bench_out/detect.json
	$(PY) benchmarks/train.py --output bench_out/train.json
	$(PY) benchmarks/convert.py --output bench_out/convert.json
	$(PY) benchmarks/ofx.py --output bench_out/ofx.json
	$(PY) benchmarks/provenance.py --output bench_out/provenance.json
	$(PY) benchmarks/studio.py --output bench_out/studio.json
	$(PY) benchmarks/mask.py --output bench_out/mask.json

# The OpenFX bundle: build/ofx/ofx_plugin/Faceplate.ofx.bundle (needs cmake and a C++17 compiler).
# The tests build into the same folder (tests/native.py), so `make test` then `make ofx` builds once.
.PHONY: ofx install-ofx natron
OFX_BUILD := build/ofx
OFX_BUNDLE := $(OFX_BUILD)/ofx_plugin/Faceplate.ofx.bundle
# Where `make install-ofx` puts the bundle: Natron's (and the OpenFX standard's) default folder.
OFX_DEST ?= /usr/OFX/Plugins

ofx: setup
	cmake -S . -B $(OFX_BUILD) -DCMAKE_BUILD_TYPE=Release -DFACEPLATE_PYTHON=$(CURDIR)/$(VENV)/bin/python >/dev/null
	cmake --build $(OFX_BUILD) -j2 --target FaceplateOFX
	@echo "built $(OFX_BUNDLE)"

# Copies the bundle into OFX_DEST (default /usr/OFX/Plugins, which Natron and other hosts
# search; use sudo, or OFX_DEST=<folder> and put that folder on OFX_PLUGIN_PATH).
install-ofx: ofx
	@mkdir -p "$(OFX_DEST)" 2>/dev/null; \
	if [ ! -w "$(OFX_DEST)" ]; then \
	  echo "install-ofx: cannot write $(OFX_DEST): run 'sudo make install-ofx', or" \
	       "'make install-ofx OFX_DEST=<folder>' and add that folder to OFX_PLUGIN_PATH" >&2; exit 1; fi; \
	rm -rf "$(OFX_DEST)/Faceplate.ofx.bundle" && cp -a $(OFX_BUNDLE) "$(OFX_DEST)/" && \
	echo "installed $(OFX_DEST)/Faceplate.ofx.bundle (it runs the Python core of $(CURDIR);" \
	     "set FACEPLATE_ROOT if you move this checkout)"

# A NatronRenderer for the real-Natron tests and the demo (../shared/natron, when beside the
# checkout; needs root for its apt packages). `make test` and `make demo` use it when installed.
NATRON_HOME ?= $(HOME)/.cache/faceplate-natron
natron:
	@test -x ../shared/natron/install.sh || { echo "natron: ../shared/natron/install.sh not found" >&2; exit 1; }
	../shared/natron/install.sh "$(NATRON_HOME)"

clean:
	rm -rf build dist demo_out bench_out .pytest_cache .mypy_cache .ruff_cache
