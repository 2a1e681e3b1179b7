#!/bin/bash
# Windows build utilities, for Git Bash or MSYS2 bash on a Windows host; use
# with `source windows_utils.sh` where Linux sources manylinux_utils.sh and
# macOS osx_utils.sh.  Defines repair_wheelhouse (delvewheel), which bundles the
# DLLs a wheel needs (OpenBLAS) into <package>.libs/, as NumPy's own Windows
# wheels do.  multibuild itself had no Windows utilities: the names and the
# contract are those of its other *_utils.sh files.
if [ -n "$WINDOWS_UTILS_SOURCED" ]; then return; fi
WINDOWS_UTILS_SOURCED=1
set -e

WINDOWS_UTILS_DIR=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=multibuild/common_utils.sh
source "$WINDOWS_UTILS_DIR/common_utils.sh"

function _nw_windows_path_list { # <path list>
    # Print a path list as the ';'-separated native Windows directories that
    # delvewheel's --add-path takes.  A list holding ';' or starting with a
    # drive letter (C:\...) is split on ';'; any other on ':' (the POSIX form
    # Git Bash uses for PATH).  Empty entries are dropped.  With cygpath (Git
    # Bash, MSYS2) each entry becomes a native path (/c/x -> C:\x); without it
    # (a POSIX host) entries are printed as they are.
    local list=$1
    local sep=":"
    case "$list" in
        *";"* | [A-Za-z]:[\\/]*) sep=";" ;;
    esac
    local -a entries=()
    IFS="$sep" read -r -a entries <<< "$list"
    local entry native out=""
    for entry in "${entries[@]}"; do
        if [ -z "$entry" ]; then continue; fi
        native=$entry
        if command -v cygpath > /dev/null 2>&1; then
            native=$(cygpath -w "$entry")
        fi
        out=${out:+$out;}$native
    done
    echo "$out"
}

function _nw_delvewheel_one() ( # <wheel> <out dir> <in dir> <add path>
    # Repair one wheel with `delvewheel repair` into a temporary directory
    # (removed by a trap), check that exactly one wheel came out, and move it
    # into OUT_DIR under a hidden name first, so no partial wheel is visible;
    # drop the input if it was repaired in place under another name.
    # An empty ADD_PATH leaves out --add-path (delvewheel then searches PATH).
    whl=$1
    out_dir=$2
    in_dir=$3
    add_path=$4
    name=$(basename "$whl")
    tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/nw-repair.XXXXXXXX") || exit 1
    trap 'rm -rf -- "$tmpdir"' EXIT
    args=(repair -w "$tmpdir")
    if [ -n "$add_path" ]; then args+=(--add-path "$add_path"); fi
    if ! delvewheel "${args[@]}" -v "$whl"; then
        _nw_err "repair_wheelhouse: delvewheel could not repair $name"
        exit 1
    fi
    built=()
    for f in "$tmpdir"/*.whl; do
        if [ -e "$f" ]; then built+=("$f"); fi
    done
    if [ "${#built[@]}" -ne 1 ]; then
        _nw_err "repair_wheelhouse: delvewheel wrote ${#built[@]} wheels for $name, expected one"
        exit 1
    fi
    repaired=$(basename "${built[0]}")
    mv -f -- "${built[0]}" "$out_dir/.$repaired.nw-part"
    mv -f -- "$out_dir/.$repaired.nw-part" "$out_dir/$repaired"
    if [ "$out_dir" -ef "$in_dir" ] && [ "$repaired" != "$name" ]; then
        rm -f -- "$whl"
    fi
)

function repair_wheelhouse {
    # Repair every platform wheel in IN_DIR with `delvewheel repair` into
    # OUT_DIR, bundling the DLLs found in NW_REPAIR_LIBRARY_PATH (then PATH);
    # pure wheels are copied through.  Exactly one wheel must come out per
    # input.  Repairing in place replaces the input; when that fails, the input
    # is renamed *.whl.unrepaired so no later step takes it for a repaired wheel.
    # Parameters: in_dir [out_dir=in_dir]
    # Depends on: NW_REPAIR_LIBRARY_PATH (directories holding the DLLs to bundle,
    #   ':' list of POSIX paths or ';' list of Windows paths), PATH
    local in_dir=$1
    local out_dir=${2:-$1}
    if [ -z "$in_dir" ]; then
        _nw_err "repair_wheelhouse: input directory not defined"
        return 1
    fi
    if [ ! -d "$in_dir" ]; then
        _nw_err "repair_wheelhouse: input directory '$in_dir' not found"
        return 1
    fi
    if ! command -v delvewheel > /dev/null 2>&1; then
        _nw_err "repair_wheelhouse: delvewheel not found on PATH (pip install delvewheel)"
        return 1
    fi
    mkdir -p "$out_dir"
    local add_path
    add_path=$(_nw_windows_path_list "$NW_REPAIR_LIBRARY_PATH")
    local whl name
    for whl in "$in_dir"/*.whl; do
        if [ ! -e "$whl" ]; then continue; fi
        name=$(basename "$whl")
        if [[ $name == *-any.whl ]]; then
            if ! [ "$in_dir" -ef "$out_dir" ]; then cp -- "$whl" "$out_dir/$name"; fi
            continue
        fi
        if ! _nw_delvewheel_one "$whl" "$out_dir" "$in_dir" "$add_path"; then
            if [ "$in_dir" -ef "$out_dir" ]; then
                mv -f -- "$whl" "$whl.unrepaired"
                _nw_err "repair_wheelhouse: moved the unrepaired wheel aside to $name.unrepaired"
            fi
            return 1
        fi
    done
}
