#!/bin/bash
# macOS build utilities: python.org / PyPy installs, SDK and arch logic, delocate
# repair, arm64 / universal2 builds.  Use with `source osx_utils.sh`.
# shellcheck disable=SC2034  # the settings below are read by callers
set -e

OSX_UTILS_DIR=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=multibuild/common_utils.sh
source "$OSX_UTILS_DIR/common_utils.sh"

MACPYTHON_URL=https://www.python.org/ftp/python
MACPYTHON_PY_PREFIX=/Library/Frameworks/Python.framework/Versions
WORKING_SDIR=working

# The latest python.org macOS installer of each minor version.
LATEST_2p7=2.7.18
LATEST_3p5=3.5.4
LATEST_3p6=3.6.8
LATEST_3p7=3.7.9
LATEST_3p8=3.8.10
LATEST_3p9=3.9.13
LATEST_3p10=3.10.11
LATEST_3p11=3.11.9
LATEST_3p12=3.12.7
LATEST_3p13=3.13.0

function check_var { # <value>
    # Fail (stderr, return 1) if VALUE is empty.
    if [ -z "$1" ]; then
        _nw_err "required variable not defined"
        return 1
    fi
}

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

function fill_pyver { # <version>
    # Fill a version to major.minor.micro from the LATEST_* variables:
    # 2 / 2.7 -> $LATEST_2p7, 3 -> $LATEST_3p13, 3.N -> $LATEST_3pN; X.Y.Z unchanged.
    local ver=$1
    check_var "$ver" || return 1
    local name=""
    if [[ $ver =~ [0-9]+\.[0-9]+\.[0-9]+ ]]; then
        echo "$ver"
        return
    elif [ "$ver" == 2 ]; then
        name=LATEST_2p7
    elif [ "$ver" == 3 ]; then
        name=LATEST_3p13
    elif [[ $ver =~ ^([23])\.([0-9]+)$ ]]; then
        name="LATEST_${BASH_REMATCH[1]}p${BASH_REMATCH[2]}"
    fi
    if [ -z "$name" ] || [ -z "${!name}" ]; then
        _nw_err "Can't fill version $ver"
        return 1
    fi
    echo "${!name}"
}

function _nw_ver_ge { # <version> <reference>
    # Succeed if VERSION >= REFERENCE (lex_ver order).
    local a b
    a=$(lex_ver "$1") || return 2
    b=$(lex_ver "$2") || return 2
    [ "$a" -ge "$b" ]
}

function macpython_sdk_list_for_version { # <version>
    # Print the macOS targets (space separated) of the python.org installers of a
    # Python version: e.g. 3.7.9 -> "10.6 10.9", 3.9.13 -> "10.9 11.0", 3.12 -> 11.0.
    local ver
    ver=$(fill_pyver "$1") || return 1
    local major=${ver%%.*}
    local -a sdks=()
    if [ "$major" == 2 ]; then
        if ! _nw_ver_ge "$ver" 2.7.18; then sdks+=(10.6); fi
        if _nw_ver_ge "$ver" 2.7.15; then sdks+=(10.9); fi
    elif [ "$major" == 3 ]; then
        if _nw_ver_ge "$ver" 3.10; then
            sdks=(11.0)
        else
            if ! _nw_ver_ge "$ver" 3.8; then sdks+=(10.6); fi
            if _nw_ver_ge "$ver" 3.6.5; then sdks+=(10.9); fi
            if _nw_ver_ge "$ver" 3.8.10 && [ "$(strip_ver_suffix "$ver")" != 3.9.0 ]; then
                sdks+=(11.0)
            fi
        fi
    else
        _nw_err "Error: version=${ver}, expecting 2.x or 3.x"
        return 1
    fi
    echo "${sdks[*]}"
}

function macpython_sdk_for_version { # <version>
    # Print the newest macOS target of the python.org installers of a version.
    local sdks
    sdks=$(macpython_sdk_list_for_version "$1") || return 1
    echo "${sdks##* }"
}

function pyinst_ext_for_version { # <version>
    # Print the python.org installer extension: dmg before 2.7.9 / 3.4.2, else pkg.
    local py_version
    check_var "$1" || return 1
    py_version=$(fill_pyver "$1") || return 1
    local major=${py_version%%.*}
    if [ "$major" == 2 ] && ! _nw_ver_ge "$py_version" 2.7.9; then
        echo dmg
    elif [ "$major" == 3 ] && ! _nw_ver_ge "$py_version" 3.4.2; then
        echo dmg
    else
        echo pkg
    fi
}

function pyinst_fname_for_version { # <version> [osx_ver]
    # Print the python.org installer file name: python-3.9.13-macosx10.9.pkg,
    # python-3.12.7-macos11.pkg.  Without OSX_VER, 3.8.10 to 3.9.x use 10.9 on an
    # x86_64 host (uname -m) and 11.0 otherwise; other versions their newest SDK.
    local py_version=$1
    local osx_ver=$2
    local inst_ext
    inst_ext=$(pyinst_ext_for_version "$py_version") || return 1
    if [ -z "$osx_ver" ]; then
        if _nw_ver_ge "$py_version" 3.8.10 && ! _nw_ver_ge "$py_version" 3.10.0; then
            if [ "$(uname -m)" == "x86_64" ]; then osx_ver=10.9; else osx_ver=11.0; fi
        else
            osx_ver=$(macpython_sdk_for_version "$py_version") || return 1
        fi
    fi
    if [ "$osx_ver" == "11.0" ] || [ "$osx_ver" == "11" ]; then
        if [ "$py_version" == "3.9.1" ]; then
            echo "python-$py_version-macos11.0.$inst_ext"
        else
            echo "python-$py_version-macos11.$inst_ext"
        fi
    else
        echo "python-$py_version-macosx$osx_ver.$inst_ext"
    fi
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

function macpython_impl_for_version { # <version>
    # Print the implementation of a version string: pypy... -> pp, digits -> cp.
    local version=$1
    check_var "$version" || return 1
    if [[ $version =~ ^pypy ]]; then
        echo pp
    elif [[ $version =~ ^[0-9\.]+$ ]]; then
        echo cp
    else
        _nw_err "config error: Issue parsing this implementation in install_python:"
        _nw_err "    version=$version"
        return 1
    fi
}

function macpython_arch_for_version { # <version> [osx_ver=$MB_PYTHON_OSX_VER]
    # Print the arch a python.org Python is built for: 10.6 -> intel,
    # 10.9 -> x86_64, 11.0 or later -> arm64; PyPy -> x86_64.
    local py_ver=$1
    check_var "$py_ver" || return 1
    local impl
    impl=$(macpython_impl_for_version "$py_ver") || return 1
    if [ "$impl" != "cp" ]; then
        echo x86_64
        return
    fi
    local py_osx_ver=${2:-$MB_PYTHON_OSX_VER}
    if [ -z "$py_osx_ver" ]; then
        py_osx_ver=$(macpython_sdk_for_version "$py_ver") || return 1
    fi
    case "$py_osx_ver" in
        10.6) echo intel ;;
        10.9) echo x86_64 ;;
        1[1-9] | 1[1-9].* | [2-9][0-9] | [2-9][0-9].*) echo arm64 ;;
        *)
            _nw_err "Unexpected CPython macOS version: ${py_osx_ver}, supported values: 10.6, 10.9, 11.0+"
            return 1
            ;;
    esac
}

function strip_macpython_ver_prefix { # <version>
    # Strip an optional pypy- prefix: pypy-5.4 -> 5.4, 3.7.2 -> 3.7.2.
    local ver=$1
    echo "${ver#pypy-}"
}

function install_macpython { # <version> [osx_ver]
    # Install python.org CPython or PyPy; sets PYTHON_EXE.
    local version=$1 py_osx_ver=$2
    local impl stripped
    impl=$(macpython_impl_for_version "$version") || return 1
    stripped=$(strip_macpython_ver_prefix "$version")
    if [ "$impl" == "pp" ]; then
        install_pypy "$stripped"
    else
        install_mac_cpython "$stripped" "$py_osx_ver"
    fi
}

function install_mac_cpython { # <version> [osx_ver]
    # Download and install a python.org CPython (sudo installer); sets PYTHON_EXE.
    # Depends on: MACPYTHON_URL, MACPYTHON_PY_PREFIX, DOWNLOADS_SDIR
    local py_version py_stripped py_inst
    py_version=$(fill_pyver "$1") || return 1
    py_stripped=$(strip_ver_suffix "$py_version") || return 1
    py_inst=$(pyinst_fname_for_version "$py_version" "$2") || return 1
    local inst_path="$DOWNLOADS_SDIR/$py_inst"
    mkdir -p "$DOWNLOADS_SDIR"
    local status=0
    cmd_notexit curl -fL -o "$inst_path" "$MACPYTHON_URL/$py_stripped/$py_inst" || status=$?
    if [ "$status" -ne 0 ]; then
        rm -f -- "$inst_path"
        _nw_err "Python download failed! Check $MACPYTHON_URL/$py_stripped/$py_inst exists on the server."
        return "$status"
    fi
    if [ "${py_inst##*.}" == "dmg" ]; then
        hdiutil attach "$inst_path" -mountpoint /Volumes/Python
        inst_path=/Volumes/Python/Python.mpkg
    fi
    sudo installer -pkg "$inst_path" -target /
    local py_mm=${py_version%.*}
    PYTHON_EXE=$MACPYTHON_PY_PREFIX/$py_mm/bin/python$py_mm
    local inst_cmd="/Applications/Python ${py_mm}/Install Certificates.command"
    if [ -e "$inst_cmd" ]; then
        sh "$inst_cmd"
    fi
}

function install_virtualenv {
    # Install virtualenv with $PIP_CMD; sets VIRTUALENV_CMD.
    check_pip || return 1
    _nw_pip install virtualenv --ignore-installed
    check_python || return 1
    VIRTUALENV_CMD="$(dirname "$PYTHON_EXE")/virtualenv"
}

function make_workon_venv { # [venv_dir=venv]
    # Make a virtualenv; set PYTHON_EXE and PIP_CMD to it.
    local venv_dir
    venv_dir=$(abspath "${1:-venv}")
    check_python || return 1
    "$PYTHON_EXE" -m virtualenv "$venv_dir"
    PYTHON_EXE=$venv_dir/bin/python
    PIP_CMD=$venv_dir/bin/pip
}

function remove_travis_ve_pip {
    # Remove Travis's /usr/local/bin virtualenv and pip, if present.
    if [ "$(command -v virtualenv)" == /usr/local/bin/virtualenv ] \
        && [ "$(command -v pip)" == /usr/local/bin/pip ]; then
        sudo pip uninstall -y virtualenv
    fi
    if [ "$(command -v pip)" == /usr/local/bin/pip ]; then
        sudo pip uninstall -y pip
    fi
}

function set_py_vars {
    # Legacy (terryfy): put $PYTHON_EXE's directory on PATH; export PYTHON_EXE, PIP_CMD.
    PATH="$(dirname "$PYTHON_EXE"):$PATH"
    export PATH PYTHON_EXE PIP_CMD
}

function get_macpython_environment { # <version> [venv_dir]
    # Install Python VERSION, pip (and a virtualenv in VENV_DIR, activated);
    # export PYTHON_EXE and PIP_CMD.
    # Depends on: USE_CCACHE
    local version=$1 venv_dir=$2
    if [ "$USE_CCACHE" == "1" ]; then
        activate_ccache
    fi
    remove_travis_ve_pip
    install_macpython "$version"
    PIP_CMD="$PYTHON_EXE -m pip"
    "$PYTHON_EXE" -m ensurepip
    _nw_pip install --upgrade pip
    if [ -n "$venv_dir" ]; then
        install_virtualenv
        make_workon_venv "$venv_dir"
        # shellcheck disable=SC1091  # made just above
        source "$venv_dir/bin/activate"
    else
        PATH="$(dirname "$PYTHON_EXE"):$PATH"
        export PATH
    fi
    export PYTHON_EXE PIP_CMD
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
