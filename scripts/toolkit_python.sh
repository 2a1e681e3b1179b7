# shellcheck shell=bash
# The one way the shell finds the toolkit's Python, for config.sh,
# scripts/wheel-uploader and scripts/stage.sh: NW_PYTHON (make and
# numpy-wheels set it), else the venv `make setup` made (VENV, default .venv
# beside scripts/; bin/python, or Scripts/python on Windows), else python3.
# The Makefile's own small commands (help, version) use it too.

nw_toolkit_python() {
    # Print the first of those that is an executable (a path) or a command on
    # PATH (a name); fail with one line naming them when none is.
    local root venv candidate
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || return 1
    venv=${VENV:-.venv}
    case "$venv" in /*) ;; *) venv=$root/$venv ;; esac
    for candidate in "${NW_PYTHON:-}" "$venv/bin/python" "$venv/Scripts/python" python3; do
        case "$candidate" in
            "") continue ;;
            */*) if [ -f "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return; fi ;;
            *) if command -v "$candidate" > /dev/null 2>&1; then echo "$candidate"; return; fi ;;
        esac
    done
    echo "no toolkit Python: NW_PYTHON=${NW_PYTHON:-(unset)}, no $venv (make setup), no python3" >&2
    return 1
}
