# numpy-wheels: thin targets over the shell library (multibuild/) and scripts/.
# `make help` lists the targets; every setting below can be overridden on the
# command line (`make wheels BUILD_COMMIT=v2.4.5`) or from the environment.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# macOS's /usr/bin/make is GNU make 3.81, which ignores .SHELLFLAGS (3.82 brought
# it, with .ONESHELL) but runs `$(SHELL) -c recipe` with SHELL split into words.
ifeq ($(filter oneshell,$(.FEATURES)),)
SHELL := bash -eu -o pipefail
endif

# interpreter that creates .venv and the build/test venvs
PYTHON ?= python3
# the toolkit's own environment (make setup)
VENV ?= .venv
# where the source to build lives
REPO_DIR ?= numpy
# git repository BUILD_COMMIT is fetched from (SOURCE=git)
REPO_URL ?= https://github.com/numpy/numpy.git
# tag, branch or hash to build (pinned release)
BUILD_COMMIT ?= v2.4.6
# built instead when BUILD_REASON=Schedule / make nightly
NIGHTLY_BUILD_COMMIT ?= main
# auto | git | sdist | local
SOURCE ?= auto
# target architecture (x86_64, i686, aarch64, ...)
PLAT ?= $(shell uname -m)
# manylinux policy (2014, _2_28); empty: best the build allows
MB_ML_VER ?=
# manylinux | musllinux
MB_ML_LIBC ?= manylinux
# where passed wheels end up
WHEEL_SDIR ?= wheelhouse
# project hooks (pre_build, run_tests, ...)
CONFIG_PATH ?= config.sh
# build environment (env_vars32.sh for 32-bit)
ENV_VARS_PATH ?= env_vars.sh
# manylinux image the Linux steps run in; empty: natively on this host
DOCKER_IMAGE ?=
# image the tests run in; empty: DOCKER_IMAGE
DOCKER_TEST_IMAGE ?=
# always | missing | never: when to pull DOCKER_IMAGE / DOCKER_TEST_IMAGE
DOCKER_PULL ?= missing
# extra `docker run` arguments (--network host, --platform ..., -v ...)
DOCKER_RUN_ARGS ?=
# docker | podman (same CLI); the engine at DOCKER_HOST (podman: CONTAINER_HOST)
CONTAINER_ENGINE ?= docker
# Python X.Y to build for; empty: PYTHON's (natively picks pythonX.Y from PATH)
MB_PYTHON_VERSION ?=
# numpy.test() label: fast locally, full on CI
TEST_LABEL ?= fast
# 1: compile through ccache (auto when ccache is present)
USE_CCACHE ?=
# build/test requirements as of: source (its commit or upload date + DEPS_GRACE_DAYS), now, or an ISO date
DEPS_AS_OF ?= source
# days added to the source's date for DEPS_AS_OF=source (same-week fixes included)
DEPS_GRACE_DAYS ?= 14
# make rebuild-check builds at other paths (a scratch dir) or the first build's same paths
REBUILD_PATHS ?= other

export PYTHON REPO_DIR REPO_URL BUILD_COMMIT NIGHTLY_BUILD_COMMIT SOURCE PLAT MB_ML_VER MB_ML_LIBC \
       WHEEL_SDIR CONFIG_PATH ENV_VARS_PATH DOCKER_IMAGE TEST_LABEL USE_CCACHE DEPS_AS_OF DEPS_GRACE_DAYS \
       REBUILD_PATHS \
       DOCKER_TEST_IMAGE DOCKER_PULL DOCKER_RUN_ARGS CONTAINER_ENGINE MB_PYTHON_VERSION

# venvs keep their executables in Scripts/ on Windows (Git Bash), bin/ elsewhere
BIN := $(VENV)/$(if $(filter Windows_NT,$(OS)),Scripts,bin)
STEP := $(BIN)/python scripts/steps.py

.PHONY: help  ## Show this help
help:
	@grep -E '^\.PHONY: [a-z-]+ +## ' $(MAKEFILE_LIST) | sed -E 's/^\.PHONY: ([a-z-]+) +## (.*)/\1\t\2/' \
	  | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo; echo "Settings (override with VAR=value):"
	@awk '/^# / {doc=substr($$0, 3)} /^[A-Z_]+ \?=/ {v=$$0; sub(/^[A-Z_]+ \?= ?/, "", v); \
	  printf "  %-20s %-18s %s\n", $$1, (v == "" ? "(empty)" : v), doc; doc=""}' $(MAKEFILE_LIST)

.PHONY: setup  ## Create .venv with the toolkit's pinned dependencies
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash scripts/setup.sh "$(PYTHON)" "$(VENV)"
	@touch $@

.PHONY: wheels  ## Source, build, repair, check and test a wheel; report in $(WHEEL_SDIR)/
wheels: setup
	$(STEP) wheels

.PHONY: nightly  ## `make wheels` of NIGHTLY_BUILD_COMMIT from git
nightly: setup
	$(STEP) wheels --nightly

.PHONY: source  ## Check out BUILD_COMMIT (git) or unpack its sdist into REPO_DIR
source: setup
	$(STEP) source

.PHONY: openblas  ## Fetch and verify OpenBLAS for PLAT; print its directory
openblas: setup
	$(BIN)/python scripts/openblas_support.py

.PHONY: build  ## Build the wheel (unrepaired) into build/raw/
build: setup
	$(STEP) build

.PHONY: repair  ## Repair build/raw/ into build/repaired/ (auditwheel/delocate/delvewheel)
repair: setup
	$(STEP) repair

.PHONY: check  ## Audit the repaired wheels with scripts/check_wheel.py
check: setup
	$(STEP) check

.PHONY: test-wheel  ## Install the repaired wheel in a clean venv, run run_tests, publish to $(WHEEL_SDIR)/
test-wheel: setup
	$(STEP) test-wheel

.PHONY: rebuild-check  ## Build the source again in a scratch checkout (ccache off); wheels must match by sha256
rebuild-check: setup
	$(BIN)/python scripts/rebuild_check.py

.PHONY: stage  ## Upload $(WHEEL_SDIR)/*.whl to anaconda.org or a package index
stage: setup
	PATH="$$(cd "$(BIN)" && pwd):$$PATH" NW_PYTHON="$(BIN)/python" bash scripts/stage.sh

.PHONY: set-commit  ## Rewrite BUILD_COMMIT in every CI file: make set-commit COMMIT=vX.Y.Z
set-commit: setup
	$(BIN)/python scripts/set_commit.py -- "$(COMMIT)"

.PHONY: clean  ## Remove build/, $(WHEEL_SDIR)/ and the test scratch directory
clean:
	rm -rf build "$(WHEEL_SDIR)" tmp_for_test tmp_for_test.*

.PHONY: lint  ## shellcheck every shell file, ruff the Python
lint: setup
	$(BIN)/shellcheck -x $$(git ls-files -co --exclude-standard '*.sh' 'multibuild/*.sh' '.ci/*' | sort -u)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: test  ## Lint, then run the whole test suite (includes one real NumPy build)
test: lint
	$(BIN)/pytest

.PHONY: benchmark  ## Run the benchmarks/ scripts (prints ratios, never fails on time)
benchmark: setup
	for b in benchmarks/*.py; do $(BIN)/python "$$b"; done
