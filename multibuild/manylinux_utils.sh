#!/bin/bash
# Linux build utilities (in a manylinux container or natively); use with
# `source manylinux_utils.sh`.  Defines repair_wheelhouse (auditwheel),
# activate_ccache and yum_install.
set -e

MANYLINUX_UTILS_DIR=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=multibuild/common_utils.sh
source "$MANYLINUX_UTILS_DIR/common_utils.sh"

function _nw_auditwheel_target {
    # Print the auditwheel --plat target, or nothing to let auditwheel pick the
    # best policy the wheel allows.
    # Parameters: [plat=$PLAT or uname -m]
    # Depends on: AUDITWHEEL_PLAT, MB_ML_LIBC, MB_ML_VER and NW_ML_VER_GIVEN
    if [ -n "$AUDITWHEEL_PLAT" ]; then
        echo "$AUDITWHEEL_PLAT"
    elif [ -n "$NW_ML_VER_GIVEN" ]; then
        local plat=${1:-${PLAT:-$(uname -m)}}
        echo "${MB_ML_LIBC:-manylinux}${MB_ML_VER}_${plat}"
    fi
}

function _nw_auditwheel_into { # <wheel> <dest dir> <target>
    # Run `auditwheel repair -w DEST_DIR [--plat TARGET] WHEEL`, finding libraries
    # in NW_REPAIR_LIBRARY_PATH first; on failure name the wheel (and TARGET).
    # Depends on: NW_REPAIR_LIBRARY_PATH, LD_LIBRARY_PATH
    local whl=$1 dest=$2 target=$3
    local -a args=(repair -w "$dest")
    if [ -n "$target" ]; then args+=(--plat "$target"); fi
    local ld_path
    ld_path=$(_nw_prefix_path "$NW_REPAIR_LIBRARY_PATH" "$LD_LIBRARY_PATH")
    # --plat carries the target; auditwheel would also (re)check AUDITWHEEL_PLAT
    if ! env -u AUDITWHEEL_PLAT LD_LIBRARY_PATH="$ld_path" auditwheel "${args[@]}" "$whl"; then
        _nw_err "repair_wheelhouse: auditwheel could not repair $(basename "$whl")${target:+ for $target}"
        return 1
    fi
}

function repair_wheelhouse {
    # Repair every platform wheel in IN_DIR with `auditwheel repair` into OUT_DIR;
    # pure wheels are copied through.  Exactly one wheel must come out per input.
    # When repairing in place fails, the input is renamed *.whl.unrepaired so no
    # later step takes it for a repaired wheel (the loop is _nw_repair_each).
    # Parameters: in_dir [out_dir=in_dir]
    # Depends on: AUDITWHEEL_PLAT, MB_ML_VER (if the caller set it), MB_ML_LIBC,
    #   PLAT, NW_REPAIR_LIBRARY_PATH (extra library dirs, colon list)
    local in_dir=$1
    local out_dir=${2:-$1}
    _nw_check_repair_input "$in_dir" || return 1
    _nw_need_tool patchelf || return 1
    _nw_need_tool auditwheel || return 1
    local target
    target=$(_nw_auditwheel_target)
    _nw_repair_each "$in_dir" "$out_dir" auditwheel _nw_auditwheel_into "$target" || return 1
    # Container builds run as root; let the host user read and clean the output.
    if [ -n "$AUDITWHEEL_PLAT" ] && [ "$(id -u)" == "0" ]; then
        chmod -R a+rwX "$out_dir"
    fi
}

function activate_ccache {
    # Compile through ccache: compiler links in a directory put first on PATH.
    # In a container the cache lives in the host home (/parent-home/.ccache).
    # Depends on: HOME; installs ccache with the system package manager if missing
    # Prints the gcc now on PATH.
    if [ -d /parent-home ]; then
        mkdir -p /parent-home/.ccache
        if [ ! -e "$HOME/.ccache" ]; then
            ln -s /parent-home/.ccache "$HOME/.ccache"
        fi
    fi
    if ! command -v ccache > /dev/null 2>&1; then
        if [ -n "$IS_ALPINE" ]; then
            suppress apk add ccache
        elif command -v apt-get > /dev/null 2>&1; then
            suppress apt-get install -y ccache
        else
            suppress yum_install ccache
        fi
    fi
    local ccache_exe link_dir compiler
    ccache_exe=$(command -v ccache)
    link_dir="$HOME/.nw-ccache/bin"
    mkdir -p "$link_dir"
    for compiler in gcc g++ cc c++; do
        ln -sf "$ccache_exe" "$link_dir/$compiler"
    done
    export PATH="$link_dir:$PATH"
    command -v gcc
}

function yum_install { # <package>
    # Install a package with yum and check it is really there (rpm -q).
    yum install -y "$1" && rpm -q "$1"
}

function _nw_first_line { # <cmd> [args...]
    # Print the first line of CMD's output; nothing when CMD fails or is missing.
    local out
    out=$("$@" 2> /dev/null) || return 0
    printf '%s' "${out%%$'\n'*}"
}

function _nw_tool_report {
    # Print "name<TAB>version" lines for where this build ran and the tools it
    # used (an empty version: the tool's version command failed).
    # Depends on: PYTHON_EXE, MB_IO_DIR (set natively)
    printf 'where\t%s\n' "$(_nw_where)"
    printf 'python_path\t%s\n' "$(command -v "$PYTHON_EXE")"
    printf 'python\t%s\n' "$(_nw_first_line "$PYTHON_EXE" --version)"
    printf 'auditwheel\t%s\n' "$(_nw_first_line auditwheel --version)"
    printf 'patchelf\t%s\n' "$(_nw_first_line patchelf --version)"
    printf 'meson-python\t%s\n' \
        "$(_nw_first_line "$PYTHON_EXE" -c 'import mesonpy; print(mesonpy.__version__)')"
    printf 'ccache\t%s\n' "$(_nw_first_line ccache --version)"
}
