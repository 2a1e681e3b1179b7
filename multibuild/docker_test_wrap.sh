#!/bin/bash
# Test entry point: installs the wheel and runs the project's run_tests, in a
# plain-distro test container (cwd /io) or natively in $MB_IO_DIR.
#
# Sourcing order: common_utils.sh, $CONFIG_PATH, then install_run
# (common_utils.sh's, which here installs and tests, or config.sh's).
# $ENV_VARS_PATH is not sourced, as in multibuild.
set -e

if [ -n "$NW_DEBUG" ]; then
    export PS4='+(${BASH_SOURCE}:${LINENO}): ${FUNCNAME[0]:+${FUNCNAME[0]}(): }'
    set -x
fi

_nw_wrap_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# shellcheck source=multibuild/common_utils.sh
source "$_nw_wrap_dir/common_utils.sh"
cd "${MB_IO_DIR:-/io}"

if [ -z "$MB_IO_DIR" ]; then
    # In the container: a manylinux image's interpreter for MB_PYTHON_VERSION,
    # else the one the image's start-up put on PATH.
    if [ -z "$PYTHON_EXE" ] && [ -n "$MB_PYTHON_VERSION" ]; then
        _nw_image_python="$(cpython_path "$MB_PYTHON_VERSION")/bin/python"
        if [ -x "$_nw_image_python" ]; then PYTHON_EXE=$_nw_image_python; fi
    fi
    PYTHON_EXE=${PYTHON_EXE:-$(any_python)}
    PIP_CMD=${PIP_CMD:-$PYTHON_EXE -m pip}
else
    PYTHON_EXE=${PYTHON_EXE:-$(any_python)}
    PIP_CMD=${PIP_CMD:-$PYTHON_EXE -m pip}
fi
# run_tests may call `python` by name: the interpreter the wheel goes into.
if [[ $PYTHON_EXE == */* ]]; then PATH="$(dirname "$PYTHON_EXE"):$PATH"; fi
export PYTHON_EXE PIP_CMD PATH

CONFIG_PATH=${CONFIG_PATH:-config.sh}
if [ ! -f "$CONFIG_PATH" ]; then
    echo "docker_test_wrap.sh: config file '$CONFIG_PATH' not found" >&2
    exit 1
fi
# shellcheck disable=SC1090  # the project's file
source "$CONFIG_PATH"

echo "docker_test_wrap.sh: $PYTHON_EXE $(_nw_where)"
install_run
