#!/usr/bin/env bash
# Create the toolkit's venv with the pinned dependencies of pyproject.toml.
# Usage: setup.sh PYTHON VENV_DIR
set -euo pipefail
python=${1:?usage: setup.sh PYTHON VENV_DIR}
venv=${2:?usage: setup.sh PYTHON VENV_DIR}

if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup: error: Python interpreter '$python' not found (set PYTHON=...)" >&2
    exit 2
fi
venv_python="$venv/bin/python"
case "$(uname -s)" in
    MINGW* | MSYS* | CYGWIN*) venv_python="$venv/Scripts/python" ;;  # Git Bash on Windows
esac
if [ ! -x "$venv_python" ]; then
    echo "setup: creating $venv with $python" >&2
    "$python" -m venv "$venv"
fi
# pip is quiet here: say what the wait is for
echo "setup: installing the toolkit and its pinned dependencies into $venv (pip)" >&2
"$venv_python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv_python" -m pip install --quiet --disable-pip-version-check -e '.[test]'

# ccache makes rebuilds of the same source fast; it is optional, so a missing
# Debian package or no root access only prints a note.
if ! command -v ccache >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -qq --no-install-recommends ccache >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 \
                 && apt-get install -y -qq --no-install-recommends ccache >/dev/null 2>&1; } \
            || echo "setup: note: could not install ccache; builds run without it" >&2
    else
        echo "setup: note: ccache not found; builds run without it" >&2
    fi
fi
