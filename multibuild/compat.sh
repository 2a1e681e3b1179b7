#!/bin/bash
# What multibuild's API keeps only for compatibility, in one place and off the
# build path (`make wheels` calls none of it): Python 2, PyPy downloads, the
# python.org macOS installers and their virtualenv workflow, `setup.py
# bdist_wheel`.  common_utils.sh sources this file at its end, so a config.sh
# written for multibuild still finds every name; the macOS functions need
# osx_utils.sh sourced first, as they always did.
# shellcheck disable=SC2034  # version tables and URLs are read by callers
if [ -n "$COMPAT_SOURCED" ]; then return; fi
COMPAT_SOURCED=1

DOWNLOADS_SDIR=downloads
PYPY_URL=https://downloads.python.org/pypy
GET_PIP_URL=https://bootstrap.pypa.io/get-pip.py

# ------------------------------------------------------------------ PyPy

# The latest versions of PyPy, for fill_pypy_ver.
LATEST_PP_5p0=5.0.1
LATEST_PP_5p1=5.1.1
LATEST_PP_5p3=5.3.1
LATEST_PP_5p4=5.4.1
LATEST_PP_5p6=5.6.0
LATEST_PP_5p7=5.7.1
LATEST_PP_5p8=5.8.0
LATEST_PP_5p9=5.9.0
LATEST_PP_5p10=5.10.0
LATEST_PP_5=$LATEST_PP_5p10

LATEST_PP_6p0=6.0.0
LATEST_PP_6=$LATEST_PP_6p0

LATEST_PP_7p0=7.0.0
LATEST_PP_7p1=7.1.1
LATEST_PP_7p2=7.2.0
LATEST_PP_7p3=7.3.12
LATEST_PP_7=$LATEST_PP_7p3

function unroll_version { # <prefix> <version>
    # Expand a version through ${PREFIX}_${VER//./p} variables until none is left:
    # `unroll_version LATEST_PP 7` -> 7.3.12.
    local prefix=$1 ver=$2
    local name
    while :; do
        name="${prefix}_${ver//./p}"
        if ! [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!name}" ]; then
            break
        fi
        ver=${!name}
    done
    echo "$ver"
}

function fill_pypy_ver { # <version>
    # Fill a PyPy version to major.minor.micro: 7 -> 7.3.12.
    unroll_version LATEST_PP "$1"
}

function get_pypy_build_prefix { # <version>
    # Print the PyPy download name prefix: pypy3.8-7.3.8 -> pypy3.8-v,
    # 7.x -> pypy2.7-v, 5.3 to 6.x -> pypy2-v, older -> pypy-.
    local version=$1
    if [[ $version =~ ^pypy([0-9]+\.[0-9]+)-[0-9] ]]; then
        echo "pypy${BASH_REMATCH[1]}-v"
    elif [[ $version =~ ^([0-9]+)\.([0-9]+) ]]; then
        local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
        if [ "$major" -gt 6 ]; then
            echo "pypy2.7-v"
        elif [ "$major" -eq 6 ] || { [ "$major" -eq 5 ] && [ "$minor" -ge 3 ]; }; then
            echo "pypy2-v"
        else
            echo "pypy-"
        fi
    else
        _nw_err "error: expected version number, got '$version'"
        return 1
    fi
}

function _nw_pypy_suffix { # <plat> <version>
    # Print the PyPy archive platform suffix for PLAT.
    local plat=$1 version=$2
    case "$plat" in
        x86_64)
            if [ -n "$IS_MACOS" ]; then
                if [ "$(lex_ver "$version")" -ge "$(lex_ver 7.3.10)" ]; then
                    echo macos_x86_64
                else
                    echo osx64
                fi
            else
                echo linux64
            fi
            ;;
        i686) echo linux32 ;;
        ppc64le | s390x | aarch64) echo "$plat" ;;
        *)
            _nw_err "install_pypy: unexpected platform '$plat'"
            return 1
            ;;
    esac
}

function install_pypy { # <version>
    # Download and unpack PyPy; set PYTHON_EXE and PIP_CMD to it.
    # Parameters: version (pypy3.9-7.3, 7.3.12, ...)
    # Depends on: PLAT (x86_64), PYPY_URL, DOWNLOADS_SDIR
    local version=$1
    local prefix major py_version suffix
    prefix=$(get_pypy_build_prefix "$version") || return 1
    major=${prefix:4:1}
    py_version=$(fill_pypy_ver "${version#*-}")
    suffix=$(_nw_pypy_suffix "${PLAT:-x86_64}" "$py_version") || return 1
    local py_build="$prefix$py_version-$suffix"
    local archive="$DOWNLOADS_SDIR/$py_build.tar.bz2"
    mkdir -p "$DOWNLOADS_SDIR"
    if [ ! -f "$archive" ]; then
        _nw_curl_to "$PYPY_URL/$py_build.tar.bz2" "$archive" || return 1
    fi
    untar "$archive"
    if [ "$major" == "3" ] && [ ! -e "$py_build/bin/pypy" ]; then
        ln -s pypy3 "$py_build/bin/pypy"
    fi
    PYTHON_EXE=$(realpath "$py_build/bin/pypy")
    "$PYTHON_EXE" -m ensurepip
    "$PYTHON_EXE" -m pip install --upgrade pip setuptools wheel
    if [ "$major" == "3" ] && [ ! -e "$py_build/bin/pip" ]; then
        ln -s pip3 "$py_build/bin/pip"
    fi
    PIP_CMD="$PYTHON_EXE -m pip"
}

# ------------------------------------------------------------------ setup.py bdist_wheel

function bdist_wheel_cmd { # <abs wheelhouse>
    # Build the project in the cwd with `setup.py bdist_wheel`; copy to WHEELHOUSE.
    check_python || return 1
    "$PYTHON_EXE" setup.py bdist_wheel
    cp dist/*.whl "$1"
}

function build_bdist_wheel {
    # Build with `setup.py bdist_wheel`.  Parameters: [repo_dir]
    wrap_wheel_builder build_wheel_cmd "bdist_wheel_cmd" "$@"
}

# ------------------------------------------------------------------ python.org macOS installers

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
