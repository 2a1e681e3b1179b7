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

function _nw_delvewheel_into { # <wheel> <dest dir> <add path>
    # Run `delvewheel repair -w DEST_DIR [--add-path ADD_PATH] -v WHEEL`; an
    # empty ADD_PATH leaves out --add-path (delvewheel then searches PATH).
    # On failure name the wheel.
    local whl=$1 dest=$2 add_path=$3
    local -a args=(repair -w "$dest")
    if [ -n "$add_path" ]; then args+=(--add-path "$add_path"); fi
    if ! delvewheel "${args[@]}" -v "$whl"; then
        _nw_err "repair_wheelhouse: delvewheel could not repair $(basename "$whl")"
        return 1
    fi
}

function repair_wheelhouse {
    # Repair every platform wheel in IN_DIR with `delvewheel repair` into
    # OUT_DIR, bundling the DLLs found in NW_REPAIR_LIBRARY_PATH (then PATH);
    # pure wheels are copied through.  Exactly one wheel must come out per
    # input.  Repairing in place replaces the input; when that fails, the input
    # is renamed *.whl.unrepaired so no later step takes it for a repaired wheel
    # (the loop is _nw_repair_each).
    # Parameters: in_dir [out_dir=in_dir]
    # Depends on: NW_REPAIR_LIBRARY_PATH (directories holding the DLLs to bundle,
    #   ':' list of POSIX paths or ';' list of Windows paths), PATH
    local in_dir=$1
    local out_dir=${2:-$1}
    _nw_check_repair_input "$in_dir" || return 1
    _nw_need_tool delvewheel || return 1
    local add_path
    add_path=$(_nw_windows_path_list "$NW_REPAIR_LIBRARY_PATH")
    _nw_repair_each --plain-count "$in_dir" "$out_dir" delvewheel \
        _nw_delvewheel_into "$add_path"
}
