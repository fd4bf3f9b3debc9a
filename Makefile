# mlff2d: every target installs what it needs (virtual environment in .venv/, the plugin
# in build/plugin/). Versions are pinned in pyproject.toml only.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
PLUGIN := build/plugin/maceplugin.so
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# GPAW (the embedded DFT code, extra `dft`) builds against libxc, OpenBLAS and FFTW
SYSPKGS := cmake g++ make libxc-dev libopenblas-dev libfftw3-dev chromium
JOBS   ?= 2
PYTEST_ARGS ?=

.PHONY: all install sysdeps plugin test test-slow demo screenshot bench lint clean

all: install plugin

sysdeps:
	@missing=""; for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

$(STAMP): pyproject.toml | sysdeps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, the CPU wheel, so that nothing pulls a CUDA build
	$(BIN)/python -m pip install -q "$(TORCH)"
	# GPAW compiles here (about a minute), configured by training/dft/gpaw_siteconfig.py;
	# gpaw-data ships the PAW setups, found by GPAW without any environment variable
	GPAW_CONFIG=$(abspath training/dft/gpaw_siteconfig.py) $(BIN)/python -m pip install -q -e ".[dev,dft]"
	touch $(STAMP)

install: $(STAMP)

$(PLUGIN): $(STAMP) CMakeLists.txt $(wildcard plugin/*.cpp plugin/*.h plugin/*.cmake)
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE=$(abspath $(BIN)/python) >/dev/null
	cmake --build build -j $(JOBS)

plugin: $(PLUGIN)

test: install plugin
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: install plugin
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

demo: install plugin
	$(BIN)/mlff2d run analysis/wse2_quick.yaml -o runs/demo

# render the demo report in headless Chromium and keep the screenshot for the README
screenshot: install
	$(BIN)/python -c "from mlff2d.report.document import screenshot; print(screenshot('runs/demo/report/report.html', 'docs/report_screenshot.png', width=1200, height=2400))"

bench: install plugin
	$(BIN)/python benchmarks/run_all.py -o runs/bench

lint: install
	$(BIN)/ruff check python tests benchmarks
	$(BIN)/ruff format --check python tests benchmarks

clean:
	rm -rf build runs .pytest_cache
