#!/bin/bash
# Host-side macOS steps: the macOS host is the build machine; install_run
# (common_utils.sh) tests in a fresh venv on this host (_NW_HOST=macos).
#
# Sourcing order: common_utils.sh, osx_utils.sh, $ENV_VARS_PATH (if readable),
# configure_build.sh, $CONFIG_PATH; config.sh may override anything, including
# before_install, build_wheel and install_run.
set -e

TRAVIS_OSX_STEPS_DIR=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=multibuild/osx_utils.sh
source "$TRAVIS_OSX_STEPS_DIR/osx_utils.sh"

ENV_VARS_PATH=${ENV_VARS_PATH:-env_vars.sh}
CONFIG_PATH=${CONFIG_PATH:-config.sh}
# This shell is the macOS host: install_run tests in a fresh venv here.
_NW_HOST=macos

function _nw_sdk_major {
    # Print the major version of the active macOS SDK (0 if unknown).
    local sdk
    sdk=$(xcrun --show-sdk-version 2> /dev/null || true)
    echo "${sdk%%.*}" | grep -E '^[0-9]+$' || echo 0
}

function _nw_select_sdk_11 {
    # arm64 / universal2 need an 11+ SDK: on GitHub Actions or Azure, switch to
    # the newest Xcode if the active SDK is older; export SDKROOT.
    # Depends on: PLAT, GITHUB_WORKFLOW, PIPELINE_WORKSPACE
    if [ "$PLAT" != "arm64" ] && [ "$PLAT" != "universal2" ]; then
        return
    fi
    if [ "$(_nw_sdk_major)" -lt 11 ] && { [ -n "$GITHUB_WORKFLOW" ] || [ -n "$PIPELINE_WORKSPACE" ]; }; then
        local xcode
        xcode=$(find /Applications -maxdepth 1 -name 'Xcode*.app' | sort -V | tail -n 1)
        if [ -n "$xcode" ]; then
            sudo xcode-select -switch "$xcode"
        fi
    fi
    if [ "$(_nw_sdk_major)" -lt 11 ]; then
        _nw_err "PLAT=$PLAT needs a macOS SDK 11 or later (xcrun --show-sdk-version)"
        return 1
    fi
    SDKROOT=$(xcrun --show-sdk-path)
    export SDKROOT
}

_nw_select_sdk_11

MB_PYTHON_VERSION=${MB_PYTHON_VERSION:-$TRAVIS_PYTHON_VERSION}
if [ -z "$MB_PYTHON_OSX_VER" ] && [ -n "$MB_PYTHON_VERSION" ]; then
    MB_PYTHON_OSX_VER=$(macpython_sdk_for_version "$MB_PYTHON_VERSION")
fi

function before_install {
    # Install python.org Python MB_PYTHON_VERSION (compat.sh) and make and
    # activate a virtualenv `venv` from it to work in, as on Linux and Windows
    # (_nw_work_venv).
    # Depends on: MB_PYTHON_VERSION, USE_CCACHE, NW_VENV_PACKAGES
    # Sets and exports PYTHON_EXE and PIP_CMD.
    export CC=clang
    export CXX=clang++
    if [ "$USE_CCACHE" == "1" ]; then
        activate_ccache
    fi
    install_macpython "$MB_PYTHON_VERSION"
    _nw_work_venv venv
}

if [ -r "$ENV_VARS_PATH" ]; then
    # shellcheck disable=SC1090  # the project's file
    source "$ENV_VARS_PATH"
fi
# shellcheck source=multibuild/configure_build.sh
source "$TRAVIS_OSX_STEPS_DIR/configure_build.sh"
if [ ! -f "$CONFIG_PATH" ]; then
    _nw_err "travis_osx_steps.sh: config file '$CONFIG_PATH' not found"
    return 1
fi
# shellcheck disable=SC1090  # the project's file
source "$CONFIG_PATH"
