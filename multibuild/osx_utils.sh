#!/bin/bash
# macOS build utilities: arch logic, delocate repair, arm64 / universal2
# builds.  Use with `source osx_utils.sh`.  The python.org installers and the
# virtualenv workflow that goes with them are in compat.sh.
set -e

OSX_UTILS_DIR=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=multibuild/common_utils.sh
source "$OSX_UTILS_DIR/common_utils.sh"

function get_py_digit {
    # Print the major version of $PYTHON_EXE.
    check_python || return 1
    "$PYTHON_EXE" -c 'import sys; print(sys.version_info[0])'
}

function get_py_mm_nodot {
    # Print XY of $PYTHON_EXE.
    check_python || return 1
    "$PYTHON_EXE" -c 'import sys; print("{0}{1}".format(*sys.version_info[:2]))'
}

function get_py_prefix {
    # Print sys.prefix of $PYTHON_EXE.
    check_python || return 1
    "$PYTHON_EXE" -c 'import sys; print(sys.prefix)'
}

function _nw_macos_plat_part { # <group 1 or 2> [distutils plat]
    # Print a part of macosx-<osx ver>-<arch> (any macOS version, 10.x to 2x.y).
    local group=$1
    local distutils_plat=$2
    if [ -z "$distutils_plat" ]; then
        distutils_plat=$(get_distutils_platform) || return 1
    fi
    if [[ $distutils_plat =~ ^macosx-([0-9]+(\.[0-9]+)?)-(.+)$ ]]; then
        if [ "$group" == 1 ]; then
            echo "${BASH_REMATCH[1]}"
        else
            echo "${BASH_REMATCH[3]}"
        fi
    else
        _nw_err "Error parsing macOS distutils platform '$distutils_plat'"
        return 1
    fi
}

function get_macpython_arch { # [distutils plat=get_distutils_platform]
    # Print the arch of a macOS platform: macosx-10.9-x86_64 -> x86_64,
    # macosx-11.0-arm64 -> arm64.
    _nw_macos_plat_part 2 "$1"
}

function get_macpython_osx_ver { # [distutils plat=get_distutils_platform]
    # Print the macOS version of a macOS platform: macosx-10.9-x86_64 -> 10.9.
    _nw_macos_plat_part 1 "$1"
}

function install_delocate {
    # Install delocate with $PIP_CMD.
    check_pip || return 1
    _nw_pip install delocate
}

function _nw_delocate_archs { # <plat>
    # Print delocate's --require-archs value for PLAT.
    case "$1" in
        x86_64) echo x86_64 ;;
        arm64) echo arm64 ;;
        universal2) echo x86_64,arm64 ;;
        intel) echo intel ;;
        *)
            _nw_err "repair_wheelhouse: unknown PLAT '$1' (expected one of: x86_64 arm64 universal2 intel)"
            return 1
            ;;
    esac
}

function _nw_delocate_into { # <wheel> <dest dir> <archs> <dyld path>
    # Run `delocate-wheel --require-archs ARCHS -w DEST_DIR -v WHEEL` with
    # DYLD_LIBRARY_PATH=DYLD_PATH; on failure name the wheel and ARCHS.
    local whl=$1 dest=$2 archs=$3 dyld=$4
    if ! DYLD_LIBRARY_PATH=$dyld delocate-wheel --require-archs "$archs" \
        -w "$dest" -v "$whl"; then
        _nw_err "repair_wheelhouse: delocate-wheel could not repair $(basename "$whl") for $archs"
        return 1
    fi
}

function repair_wheelhouse {
    # Copy the libraries each platform wheel in IN_DIR needs into it with
    # `delocate-wheel --require-archs <archs> -w OUT_DIR -v`; pure wheels are
    # copied through (the loop is _nw_repair_each --direct).
    # Parameters: in_dir [out_dir=in_dir]
    # Depends on: PLAT, NW_REPAIR_LIBRARY_PATH (prepended to DYLD_LIBRARY_PATH)
    local in_dir=$1
    local out_dir=${2:-$1}
    _nw_check_repair_input "$in_dir" || return 1
    local archs
    archs=$(_nw_delocate_archs "${PLAT:-$(uname -m)}") || return 1
    if ! command -v delocate-wheel > /dev/null 2>&1; then
        install_delocate || return 1
    fi
    local dyld
    dyld=$(_nw_prefix_path "$NW_REPAIR_LIBRARY_PATH" "$DYLD_LIBRARY_PATH")
    _nw_repair_each --direct "$in_dir" "$out_dir" delocate-wheel \
        _nw_delocate_into "$archs" "$dyld"
}

function install_pkg_config {
    # Install pkg-config with Homebrew unless present.
    command -v pkg-config > /dev/null 2>&1 || brew install pkg-config
}

function activate_ccache {
    # Compile through Homebrew's ccache.
    brew install ccache
    export PATH=/usr/local/opt/ccache/libexec:$PATH
    export CCACHE_CPP2=1
    echo "Using C compiler: $(command -v clang)"
}

function _nw_append_flag { # <variable name> <flags>
    # Append FLAGS to the exported variable NAME unless it holds them already (a
    # setup run twice must not give the compiler `-arch x86_64 -arch x86_64`).
    local name=$1 flags=$2
    if [[ " ${!name-} " == *" $flags "* ]]; then
        export "${name?}"
        return
    fi
    export "$name=${!name:+${!name} }$flags"
}

function macos_intel_native_build_setup {
    # Set the environment for a native x86_64 build.
    # Depends on: MB_PYTHON_OSX_VER
    PLAT=x86_64
    export _PYTHON_HOST_PLATFORM="macosx-${MB_PYTHON_OSX_VER}-x86_64"
    local name
    for name in CFLAGS CXXFLAGS CPPFLAGS LDFLAGS ARCHFLAGS; do
        _nw_append_flag "$name" "-arch x86_64"
    done
}

function macos_intel_cross_build_setup {
    # An x86_64 cross build on arm64 is not supported.
    _nw_err "universal2 builds on arm64 are not supported yet."
    return 1
}

function macos_arm64_cross_build_setup {
    # Set the environment to cross-compile for arm64 on an x86_64 host, with its
    # own BUILD_PREFIX (/opt/arm64-builds).
    # Depends on: FC_ARM64, F90_ARM64, F77_ARM64, FC_ARM64_LDFLAGS (gfortran-install)
    PLAT=arm64
    BUILD_PREFIX=/opt/arm64-builds
    sudo mkdir -p "$BUILD_PREFIX/lib" "$BUILD_PREFIX/include"
    sudo chown -R "$USER" "$BUILD_PREFIX"
    update_env_for_build_prefix
    export _PYTHON_HOST_PLATFORM="macosx-11.0-arm64"
    local name
    for name in CFLAGS CXXFLAGS CPPFLAGS ARCHFLAGS FCFLAGS; do
        _nw_append_flag "$name" "-arch arm64"
    done
    export FC=$FC_ARM64
    export F90=${F90_ARM64:-$FC}
    export F77=${F77_ARM64:-$FC}
    export MACOSX_DEPLOYMENT_TARGET="11.0"
    export CROSS_COMPILING=1
    _nw_append_flag LDFLAGS "-arch arm64 -L$BUILD_PREFIX/lib -Wl,-rpath,$BUILD_PREFIX/lib $FC_ARM64_LDFLAGS"
    export host_alias="aarch64-apple-darwin20.0.0"
}

# shellcheck disable=SC2120  # the command argument is optional
function macos_arm64_native_build_setup {
    # Set the environment for a native arm64 build, then run any command given.
    PLAT=arm64
    export _PYTHON_HOST_PLATFORM="macosx-11.0-arm64"
    _nw_append_flag ARCHFLAGS "-arch arm64"
    if [ $# -gt 0 ]; then "$@"; fi
}

function fuse_macos_intel_arm64 {
    # Merge each x86_64 wheel in $WHEEL_SDIR with its arm64 twin into one universal2
    # wheel (delocate-merge, which names it from the merged binaries); the x86_64
    # wheel is removed, the arm64 one kept.
    # Depends on: WHEEL_SDIR, MACOSX_DEPLOYMENT_TARGET
    local wheelhouse
    wheelhouse=$(abspath "${WHEEL_SDIR:-wheelhouse}")
    local target=${MACOSX_DEPLOYMENT_TARGET//./_}
    local tmp
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/nw-fuse.XXXXXXXX")
    local x86 arm merged
    for x86 in "$wheelhouse"/*"macosx_${target}_x86_64.whl"; do
        [ -e "$x86" ] || continue
        # the twin: arm64 cross builds target 11.0; a native one, the same target
        arm=${x86%"macosx_${target}_x86_64.whl"}macosx_11_0_arm64.whl
        [ -e "$arm" ] || arm=${x86%_x86_64.whl}_arm64.whl
        [ -e "$arm" ] || continue
        if ! delocate-merge "$x86" "$arm" -w "$tmp"; then
            rm -rf -- "$tmp"
            _nw_err "fuse_macos_intel_arm64: delocate-merge failed for $(basename "$x86")"
            return 1
        fi
        for merged in "$tmp"/*.whl; do
            mv -f -- "$merged" "$wheelhouse/"
        done
        rm -f -- "$x86"
    done
    rm -rf -- "$tmp"
}

function wrap_wheel_builder {
    # Run a wheel builder for PLAT: universal2 builds x86_64 natively and arm64
    # by cross-compiling, then fuses the wheels; arm64 and x86_64 set up their
    # environment first; anything else just runs the command.  Each build runs
    # in a subshell, so nested calls see the per-arch PLAT.
    # Parameters: cmd [args...]
    # Depends on: PLAT
    local host
    host=$(uname -m)
    if [ "$PLAT" == "universal2" ]; then
        if [ "$host" == "x86_64" ]; then
            (macos_intel_native_build_setup && "$@")
            rm -rf -- *-stamp
            (macos_arm64_cross_build_setup && "$@")
            fuse_macos_intel_arm64
        else
            (macos_intel_cross_build_setup && "$@")
        fi
    elif [ "$PLAT" == "arm64" ]; then
        if [ "$host" == "arm64" ]; then
            # shellcheck disable=SC2119  # setup only; the command runs after it
            (macos_arm64_native_build_setup && "$@")
        else
            (macos_arm64_cross_build_setup && "$@")
        fi
    elif [ "$PLAT" == "x86_64" ]; then
        if [ "$host" == "x86_64" ]; then
            (macos_intel_native_build_setup && "$@")
        else
            (macos_intel_cross_build_setup && "$@")
        fi
    else
        "$@"
    fi
}
