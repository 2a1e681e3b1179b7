#!/bin/bash
# Build entry point: runs $BUILD_COMMANDS in a manylinux container (cwd /io) or,
# without a container engine, natively in $MB_IO_DIR with the caller's
# PYTHON_EXE / PIP_CMD.
#
# Sourcing order: manylinux_utils.sh (with common_utils.sh), $ENV_VARS_PATH if
# readable, configure_build.sh, $CONFIG_PATH; then BUILD_COMMANDS runs as a bash
# command string (so `&&` and quoting work).
set -e

if [ -n "$NW_DEBUG" ]; then
    export PS4='+(${BASH_SOURCE}:${LINENO}): ${FUNCNAME[0]:+${FUNCNAME[0]}(): }'
    set -x
fi

_nw_wrap_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "${MB_IO_DIR:-/io}"

WHEEL_SDIR=${WHEEL_SDIR:-wheelhouse}
CONFIG_PATH=${CONFIG_PATH:-config.sh}
ENV_VARS_PATH=${ENV_VARS_PATH:-env_vars.sh}

# shellcheck source=multibuild/manylinux_utils.sh
source "$_nw_wrap_dir/manylinux_utils.sh"
if [ -r "$ENV_VARS_PATH" ]; then
    # shellcheck disable=SC1090  # the project's file
    source "$ENV_VARS_PATH"
fi
# shellcheck source=multibuild/configure_build.sh
source "$_nw_wrap_dir/configure_build.sh"

if [ "$USE_CCACHE" == "1" ]; then
    activate_ccache
fi

if [ -z "$MB_IO_DIR" ]; then
    # In the container: pick the image's interpreter for PYTHON_VERSION.
    if [[ $PYTHON_VERSION == pypy* ]]; then
        install_pypy "$PYTHON_VERSION"
        PATH="$(dirname "$PYTHON_EXE"):$PATH"
    else
        PYTHON_EXE="$(cpython_path "$PYTHON_VERSION" "$UNICODE_WIDTH")/bin/python"
        if [ ! -x "$PYTHON_EXE" ]; then
            echo "docker_build_wrap.sh: this image has no Python ${PYTHON_VERSION:-(MB_PYTHON_VERSION empty)} ($PYTHON_EXE)" >&2
            exit 1
        fi
        PATH="$(dirname "$PYTHON_EXE"):$PATH"
        "$PYTHON_EXE" -m ensurepip > /dev/null 2>&1 || true
        PIP_CMD="$PYTHON_EXE -m pip"
    fi
else
    # Native: keep the caller's interpreter.
    PYTHON_EXE=${PYTHON_EXE:-$(any_python)}
    PIP_CMD=${PIP_CMD:-$PYTHON_EXE -m pip}
fi
export PYTHON_EXE PIP_CMD

if [ ! -f "$CONFIG_PATH" ]; then
    echo "docker_build_wrap.sh: config file '$CONFIG_PATH' not found" >&2
    exit 1
fi
# shellcheck disable=SC1090  # the project's file
source "$CONFIG_PATH"

if [ -z "$BUILD_COMMANDS" ]; then
    echo "docker_build_wrap.sh: BUILD_COMMANDS is empty" >&2
    exit 1
fi
echo "docker_build_wrap.sh: $PYTHON_EXE ($("$PYTHON_EXE" --version 2>&1)) $(_nw_where)"
eval "$BUILD_COMMANDS"
if [ -n "$NW_TOOLS_FILE" ]; then
    _nw_tool_report > "$NW_TOOLS_FILE"
fi
