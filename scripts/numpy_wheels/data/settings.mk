# numpy-wheels' settings: the one table `make help` and `numpy-wheels --help` list.
# Each setting is a `NAME ?= default` line under the `# meaning` line it is shown
# with.  The Makefile includes this file; numpy_wheels.options reads it as package
# data, so an installed toolkit lists the same settings with the same defaults.
# A value, first found wins: the command line, the environment, the default here.

# settings shown only as (set) and never taken from a command line (make patterns;
# `override`: no command line can unhide them)
override SECRET_SETTINGS := %TOKEN %PASSWORD %SIGNING_KEY

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
# policy: 1, 2010, 2014 or _2_NN (e.g. _2_28); musllinux _1_N; empty: best the build allows
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
# fixed place (yours alone) through which every checkout's build sees its build venv and OpenBLAS
NW_BUILD_ROOT ?= /tmp/numpy-wheels-build
# scratch space of the steps (venvs, meson, logs); empty: build/ of the toolkit checkout
NW_WORK_DIR ?=
# simple index the sdist and OpenBLAS come from; empty: pip's index (PIP_INDEX_URL, pip.conf)
NW_INDEX_URL ?=
# sdist download cache; empty: ~/.cache/numpy-wheels/sdist
NW_SDIST_CACHE ?=
# scipy-openblas version to build with; empty: the one the toolkit pins for BUILD_COMMIT
OPENBLAS_VERSION ?=
# OpenBLAS download cache; empty: ~/.cache/numpy-wheels/openblas
NW_OPENBLAS_CACHE ?=
# bytes a download with no declared size may reach; empty: 4 GiB
NW_MAX_DOWNLOAD_BYTES ?=
# bytes one index or listing page may reach; empty: 32 MiB
NW_MAX_PAGE_BYTES ?=
# seconds one request may take however slowly the server sends; empty: 1800
NW_REQUEST_DEADLINE ?=
# longest Retry-After wait honoured before a retry (seconds); empty: 120
NW_MAX_RETRY_AFTER ?=
# bytes an sdist or OpenBLAS archive may expand to; empty: 512 MiB
NW_MAX_EXTRACT_BYTES ?=
# members an sdist or OpenBLAS archive may hold; empty: 100000
NW_MAX_EXTRACT_MEMBERS ?=

# -- read by `make stage` and `make set-commit` (from here, the command line or the environment)
# anaconda.org org to stage to; empty: chosen from BUILD_COMMIT and NIGHTLY
ANACONDA_ORG ?=
# anaconda.org token (secret: help shows only whether it is set)
ANACONDA_TOKEN ?=
# file holding the anaconda.org token, instead of ANACONDA_TOKEN
ANACONDA_TOKEN_FILE ?=
# CI secret: the staging org's token, used when ANACONDA_TOKEN is unset
NUMPY_STAGING_UPLOAD_TOKEN ?=
# CI secret: the nightly org's token, used when ANACONDA_TOKEN is unset
NUMPY_NIGHTLY_UPLOAD_TOKEN ?=
# a PyPI-compatible index URL to stage to with twine instead of anaconda.org
STAGE_REPOSITORY_URL ?=
# 1: replace files already staged (--force instead of --skip-existing)
STAGE_FORCE ?=
# 1: the audit's warnings stop the stage too (a FAIL always does)
STAGE_STRICT ?=
# project(s) every staged wheel must be of (spaces or commas); empty: numpy for NumPy's orgs
STAGE_PROJECT ?=
# private key (ssh or OpenPGP, unencrypted) signing the staged provenance (secret: help shows only whether it is set)
STAGE_SIGNING_KEY ?=
# file holding that key, instead of STAGE_SIGNING_KEY
STAGE_SIGNING_KEY_FILE ?=
# 1: print the upload commands (secrets as ********), upload nothing
DRY_RUN ?=
# 1: a nightly run (stage to the nightly org), as a scheduled CI run is
NIGHTLY ?=
# the ref `make set-commit` writes into every CI file and BUILD_COMMIT's default
COMMIT ?=
# -- output of numpy-wheels (make wheels and the steps)
# 1: only errors and the summary; step output stays in build/logs/
NW_QUIET ?=
# 1: say more
NW_VERBOSE ?=
