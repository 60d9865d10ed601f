# augment: the two commands a new user needs are `make demo` and `make test`.
# Everything installs into .venv/ in this checkout, pinned by constraints.txt.

# The first Python 3.12 that actually runs (a pyenv shim may exist without a version selected).
PYTHON ?= $(shell for p in python3.12 /root/.pyenv/versions/3.12.1/bin/python3.12 $$HOME/.pyenv/versions/3.12.*/bin/python3.12; do \
            $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export RAY_AUTH_MODE := disabled
export MUJOCO_GL := egl
export SVT_LOG := 1

.PHONY: help install system-deps demo test test-slow bench bench-policy clean

help:
	@echo "make demo       build MetaWorld episodes, run pipelines/demo.yaml on a local Ray, show the result"
	@echo "make test       install what the tests need and run them (the default, fast set)"
	@echo "make test-slow  the slow tests too (Ray cluster via 'ray start', tiny SVD/Cosmos rollouts)"
	@echo "make bench      augment's sink vs lerobot's writer (prints 'speedup: X.XX')"
	@echo "make bench-policy  ACT trained on real vs real+augmented MetaWorld demos, evaluated on shifted scenes"

# Debian packages: FFmpeg's libraries for torchcodec (lerobot's video decoder) and Mesa for
# MuJoCo's headless EGL rendering. Skipped where they are present or apt is not ours to use.
system-deps:
	@if ! ldconfig -p | grep -q libavutil || ! ldconfig -p | grep -q libEGL.so.1 || ! ldconfig -p | grep -q libOSMesa; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg libegl1 libgl1-mesa-dri libosmesa6 >/dev/null; \
	  else echo "please install ffmpeg, libegl1, libgl1-mesa-dri and libosmesa6"; fi; fi

$(BIN)/.installed: pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "Python 3.12 not found; install it (pyenv install 3.12) or pass PYTHON=/path/to/python3.12"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[sim,test]"
	touch $@

install: system-deps $(BIN)/.installed

data/sim/meta/info.json: | install
	$(BIN)/python scripts/make_sim_dataset.py --sim metaworld --task pick-place-v3 --episodes 6 \
	  --size 128 --cameras corner2,gripperPOV --out data/sim --overwrite

demo: install data/sim/meta/info.json
	@echo "== source dataset"; $(BIN)/augment inspect data/sim
	$(BIN)/augment run pipelines/demo.yaml --set sink.overwrite=true
	@echo "== augmented dataset"; $(BIN)/augment inspect out/demo

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m ""

bench: install data/sim/meta/info.json
	$(BIN)/python benchmarks/bench_writer.py --source data/sim --copies 4

# Record, augment (augment run), train twice (lerobot-train), evaluate in shifted scenes; QUICK=1 for the smoke check.
# The smoke check works in its own folder and leaves the README's table alone.
bench-policy: install
	nice -n 10 $(BIN)/python benchmarks/bench_policy.py $(if $(QUICK),--quick --work out/bench_policy_quick \
	  --json out/bench_policy_quick/rows.json,--work out/bench_policy --json out/bench_policy/rows.json \
	  --readme README.md) --frames

clean:
	rm -rf out data .pytest_cache
