#!/bin/bash
# Host-side Windows steps (Git Bash or MSYS2 bash): the Windows host is the
# build machine, as on macOS.  before_install makes the work venv; build_wheel
# and build_index_wheel are the common_utils.sh ones, run natively (repaired
# with windows_utils.sh's delvewheel); so is install_run, which tests in a
# fresh venv on this host (_NW_HOST=windows).
#
# Sourcing order: common_utils.sh, windows_utils.sh, $ENV_VARS_PATH (if
# readable), configure_build.sh, $CONFIG_PATH; config.sh may override anything,
# including before_install, build_wheel and install_run.
set -e

TRAVIS_WINDOWS_STEPS_DIR=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=multibuild/windows_utils.sh
source "$TRAVIS_WINDOWS_STEPS_DIR/windows_utils.sh"

ENV_VARS_PATH=${ENV_VARS_PATH:-env_vars.sh}
CONFIG_PATH=${CONFIG_PATH:-config.sh}
# This shell is the Windows host: install_run tests in a fresh venv here.
_NW_HOST=windows

function before_install {
    # Make and activate a virtualenv `venv` (Scripts/ layout) in the cwd from
    # $PYTHON_EXE, as _nw_work_venv does.
    # Depends on: PYTHON_EXE (optional), NW_VENV_PACKAGES
    # Sets and exports PYTHON_EXE (venv/Scripts/python) and PIP_CMD.
    _nw_work_venv venv
}

if [ -r "$ENV_VARS_PATH" ]; then
    # shellcheck disable=SC1090  # the project's file
    source "$ENV_VARS_PATH"
fi
# configure_build.sh adds the GNU linker's -Wl,-strip-all to CFLAGS off macOS;
# MSVC (NumPy's Windows compiler) rejects it, so no strip flags unless asked.
STRIP_FLAGS=${STRIP_FLAGS-}
# shellcheck source=multibuild/configure_build.sh
source "$TRAVIS_WINDOWS_STEPS_DIR/configure_build.sh"
if [ ! -f "$CONFIG_PATH" ]; then
    _nw_err "travis_windows_steps.sh: config file '$CONFIG_PATH' not found"
    return 1
fi
# shellcheck disable=SC1090  # the project's file
source "$CONFIG_PATH"
