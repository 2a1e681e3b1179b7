# numpy-wheels: thin targets over the shell library (multibuild/) and scripts/.
# `make help` lists the targets; every setting (scripts/numpy_wheels/data/settings.mk,
# included below) can be overridden on the command line (`make wheels BUILD_COMMIT=v2.4.5`) or from the environment.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# macOS's /usr/bin/make is GNU make 3.81, which ignores .SHELLFLAGS (3.82 brought
# it, with .ONESHELL) but runs `$(SHELL) -c recipe` with SHELL split into words.
ifeq ($(filter oneshell,$(.FEATURES)),)
SHELL := bash -eu -o pipefail
endif

# the settings: defaults and meanings, one table shipped in the package too
SCRIPTS := $(dir $(lastword $(MAKEFILE_LIST)))scripts
SETTINGS_MK := $(SCRIPTS)/numpy_wheels/data/settings.mk
include $(SETTINGS_MK)

export PYTHON REPO_DIR REPO_URL BUILD_COMMIT NIGHTLY_BUILD_COMMIT SOURCE PLAT MB_ML_VER MB_ML_LIBC \
       WHEEL_SDIR CONFIG_PATH ENV_VARS_PATH DOCKER_IMAGE TEST_LABEL USE_CCACHE DEPS_AS_OF DEPS_GRACE_DAYS \
       NW_BUILD_ROOT NW_QUIET NW_VERBOSE \
       DOCKER_TEST_IMAGE DOCKER_PULL DOCKER_RUN_ARGS CONTAINER_ENGINE MB_PYTHON_VERSION

# the toolkit checkout the commands work in (numpy_wheels reads it; config.sh too)
export NW_ROOT := $(CURDIR)

# venvs keep their executables in Scripts/ on Windows (Git Bash), bin/ elsewhere
BIN := $(VENV)/$(if $(filter Windows_NT,$(OS)),Scripts,bin)
# the one command every step goes through (numpy_wheels/cli.py)
STEP := $(BIN)/numpy-wheels
# make's own small commands (help, version): the toolkit's Python by the shell's one
# rule (scripts/toolkit_python.sh), never PYTHON (the one to build with may be any)
TOOL_PYTHON := PYTHONPATH=$(SCRIPTS) $(shell VENV='$(VENV)' bash -c \
  'source "$$1" && nw_toolkit_python' - $(SCRIPTS)/toolkit_python.sh)

MAKEFILE := $(firstword $(MAKEFILE_LIST))
# every `NAME ?=` setting of SETTINGS_MK, in order, for `make help`
SETTINGS := $(shell sed -n 's/^\([A-Z_]*\) ?=.*/\1/p' $(SETTINGS_MK))
# a setting's effective value, quoted for the shell; secrets only as (set)
help_value = '$(if $(filter $(SECRET_SETTINGS),$(1)),$(if $($(1)),(set)),$(subst ','\'',$($(1))))'

.PHONY: help  ## Show this help, with every setting's effective value
help:
	@grep -E '^\.PHONY: [a-z-]+ +## ' $(MAKEFILE) | sed -E 's/^\.PHONY: ([a-z-]+) +## (.*)/\1\t\2/' \
	  | NW_HELP_SDIR=$(call help_value,WHEEL_SDIR) awk -F'\t' '{i = index($$2, "$$(WHEEL_SDIR)"); \
	    if (i) $$2 = substr($$2, 1, i - 1) ENVIRON["NW_HELP_SDIR"] substr($$2, i + 13); \
	    printf "  %-14s %s\n", $$1, $$2}'
	@echo; echo "Settings, as this make sees them (override with VAR=value or the environment):"
	@env $(foreach v,$(SETTINGS),$(v)=$(call help_value,$(v))) $(TOOL_PYTHON) -m numpy_wheels.options

.PHONY: version  ## Print the toolkit's version
version:
	@$(TOOL_PYTHON) -c 'from numpy_wheels.log import toolkit_version; print("numpy-wheels-toolkit", toolkit_version())'

# An unknown target (`make wheel`): name the nearest one.  Next to known goals
# (`make wheels wheel`) it is refused first, before any of them runs.
GOALS := $(shell sed -nE 's/^\.PHONY: ([a-z-]+) +## .*/\1/p' $(MAKEFILE))
UNKNOWN_GOALS := $(filter-out $(GOALS) $(VENV)/.installed,$(MAKECMDGOALS))
ifneq ($(UNKNOWN_GOALS),)
$(filter $(GOALS),$(MAKECMDGOALS)): | $(UNKNOWN_GOALS)
endif
.DEFAULT:
	+@echo "make: no target '$(subst ','\'',$@)'$$($(TOOL_PYTHON) -c 'import difflib, sys; m = difflib.get_close_matches(sys.argv[1], sys.argv[2:], 1, 0.5); print(f"; did you mean make {m[0]}?" if m else "")' '$(subst ','\'',$@)' $(GOALS)) (make help lists them)" >&2; exit 2

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
	$(STEP) openblas

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
	$(STEP) test

.PHONY: rebuild-check  ## Build the source again in a scratch checkout (ccache off); wheels must match by sha256
rebuild-check: setup
	$(STEP) rebuild-check

.PHONY: stage  ## Upload the wheels of $(WHEEL_SDIR)/manifest.sha256 to anaconda.org or an index
stage: setup
	$(STEP) stage

.PHONY: set-commit  ## Rewrite BUILD_COMMIT in every CI file: make set-commit COMMIT=vX.Y.Z
set-commit: setup
	$(STEP) set-commit -- "$(COMMIT)"

.PHONY: clean  ## Remove build/, the test scratch directory and the toolkit's files in $(WHEEL_SDIR)/
# Only what the steps write there: WHEEL_SDIR=.. or =$$HOME or =$(REPO_DIR) loses nothing else.
clean:
	rm -rf build tmp_for_test tmp_for_test.*
	if [ -d "$(WHEEL_SDIR)" ]; then (cd "$(WHEEL_SDIR)" && rm -f -- *.whl failed/*.whl manifest.sha256 \
	  build-report.json build-provenance.intoto.json build-provenance.intoto.json.sig \
	  build-provenance.intoto.json.asc); rmdir "$(WHEEL_SDIR)/failed" "$(WHEEL_SDIR)" 2>/dev/null || :; fi

.PHONY: lint  ## shellcheck every shell file, ruff the Python
lint: setup
	$(BIN)/shellcheck -x $$(git ls-files -co --exclude-standard '*.sh' 'multibuild/*.sh' '.ci/*' | sort -u)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

.PHONY: test  ## Lint, then run the whole test suite (includes one real NumPy build)
test: lint
	$(BIN)/pytest

.PHONY: benchmark  ## Run the benchmarks/ scripts: builds NumPy, ~20 minutes, some GiB of disk
benchmark: setup
	@echo "benchmark: builds NumPy from source twice (~20 minutes on 2 cores, a few GiB in build/); Ctrl-C to stop"
	for b in benchmarks/*.py; do $(BIN)/python "$$b"; done
