#!/bin/bash
# Test entry point: installs the wheel and runs the project's run_tests, in a
# plain-distro test container (cwd /io) or natively in $MB_IO_DIR.
#
# Sourcing order: common_utils.sh, $CONFIG_PATH, then install_run (the one from
# common_utils.sh).  $ENV_VARS_PATH is not sourced, as in multibuild.
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
    # In the container, the image's start-up put the right python on PATH.
    PYTHON_EXE=${PYTHON_EXE:-python}
    PIP_CMD=${PIP_CMD:-pip}
else
    PYTHON_EXE=${PYTHON_EXE:-$(any_python)}
    PIP_CMD=${PIP_CMD:-$PYTHON_EXE -m pip}
fi
export PYTHON_EXE PIP_CMD

CONFIG_PATH=${CONFIG_PATH:-config.sh}
if [ ! -f "$CONFIG_PATH" ]; then
    echo "docker_test_wrap.sh: config file '$CONFIG_PATH' not found" >&2
    exit 1
fi
# shellcheck disable=SC1090  # the project's file
source "$CONFIG_PATH"

install_run
