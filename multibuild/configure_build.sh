#!/bin/bash
# Build environment: BUILD_PREFIX and default compiler flags; use with
# `source configure_build.sh` after the OS utils and $ENV_VARS_PATH.
# Nothing is installed at source time unless we are inside a manylinux image
# (AUDITWHEEL_PLAT set) as root, so a native build needs no root.
# shellcheck disable=SC2034  # the variables below are read by callers
if [ -n "$CONFIGURE_BUILD_SOURCED" ]; then return; fi
CONFIGURE_BUILD_SOURCED=1

CONFIGURE_BUILD_DIR=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=multibuild/common_utils.sh
source "$CONFIGURE_BUILD_DIR/common_utils.sh"

BUILD_PREFIX="${BUILD_PREFIX:-/usr/local}"

function _nw_arch_flags_for_plat { # <plat>
    # Print the macOS -arch flags for PLAT (intel, x86_64, arm64, universal2).
    case "$1" in
        intel) echo "-arch i386 -arch x86_64" ;;
        x86_64) echo "-arch x86_64" ;;
        arm64) echo "-arch arm64" ;;
        universal2) echo "" ;;
        *)
            _nw_err "configure_build.sh: unknown PLAT '$1' (expected one of: x86_64 arm64 universal2 intel)"
            return 1
            ;;
    esac
}

function _nw_in_manylinux_image {
    # Succeed inside a manylinux/musllinux image as root.
    [ -n "$AUDITWHEEL_PLAT" ] && [ "$(id -u)" == "0" ]
}

if [ -n "$IS_MACOS" ]; then
    # shellcheck source=multibuild/osx_utils.sh
    source "$CONFIGURE_BUILD_DIR/osx_utils.sh"
    if [ -z "$PLAT" ]; then
        PLAT=$(macpython_arch_for_version "$MB_PYTHON_VERSION")
    fi
    if [ -z "${ARCH_FLAGS+x}" ]; then
        ARCH_FLAGS=$(_nw_arch_flags_for_plat "$PLAT") || return 1
    fi
    export CFLAGS="${CFLAGS:-$ARCH_FLAGS}"
    export CXXFLAGS="${CXXFLAGS:-$ARCH_FLAGS}"
    export FFLAGS="${FFLAGS:-$ARCH_FLAGS}"
    export HOMEBREW_NO_AUTO_UPDATE=1
else
    PLAT="${PLAT:-x86_64}"
    STRIP_FLAGS=${STRIP_FLAGS--Wl,-strip-all}
    export CFLAGS="${CFLAGS:-$STRIP_FLAGS}"
    export CXXFLAGS="${CXXFLAGS:-$STRIP_FLAGS}"
    export FFLAGS="${FFLAGS:-$STRIP_FLAGS}"
    if _nw_in_manylinux_image; then
        if [ "$MB_ML_VER" == "_2_24" ]; then
            apt-get update > /dev/null
        elif [ "$MB_ML_VER" == "1" ]; then
            yum install -y libtool wget > /dev/null
        fi
        if [[ $MB_PYTHON_VERSION == pypy* ]] && ! command -v wget > /dev/null 2>&1; then
            if [ -n "$IS_ALPINE" ]; then
                apk add wget > /dev/null
            elif command -v yum > /dev/null 2>&1; then
                yum install -y wget > /dev/null
            fi
        fi
    fi
fi

# Saved so update_env_for_build_prefix can be called again with a new prefix.
CPPFLAGS_BACKUP="$CPPFLAGS"
LIBRARY_PATH_BACKUP="$LIBRARY_PATH"
PKG_CONFIG_PATH_BACKUP="$PKG_CONFIG_PATH"

function update_env_for_build_prefix {
    # Point the compiler, linker, pkg-config and PATH at $BUILD_PREFIX.
    # Depends on: BUILD_PREFIX, CPPFLAGS_BACKUP, LIBRARY_PATH_BACKUP,
    #   PKG_CONFIG_PATH_BACKUP
    export CPPFLAGS="-I$BUILD_PREFIX/include${CPPFLAGS_BACKUP:+ $CPPFLAGS_BACKUP}"
    export LIBRARY_PATH="$BUILD_PREFIX/lib${LIBRARY_PATH_BACKUP:+:$LIBRARY_PATH_BACKUP}"
    export PKG_CONFIG_PATH="$BUILD_PREFIX/lib/pkgconfig/${PKG_CONFIG_PATH_BACKUP:+:$PKG_CONFIG_PATH_BACKUP}"
    case ":$PATH:" in
        *":$BUILD_PREFIX/bin:"*) ;;
        *) export PATH="$BUILD_PREFIX/bin:$PATH" ;;
    esac
}

update_env_for_build_prefix
