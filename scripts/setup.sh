#!/usr/bin/env bash
# Create the toolkit's venv with the pinned dependencies of pyproject.toml.
# Usage: setup.sh PYTHON VENV_DIR
# The venv is made by the shell library's one venv maker (_nw_make_venv), which
# needs nothing installed: this runs before the toolkit is.
set -eo pipefail
if [ "${1:-}" = --version ]; then # the toolkit's one version (numpy_wheels/log.py)
    exec "${PYTHON:-python3}" -c 'import sys; sys.path.insert(0, sys.argv[1]); from numpy_wheels.log import toolkit_version; print("setup.sh (numpy-wheels-toolkit)", toolkit_version())' "$(dirname "${BASH_SOURCE[0]}")"
fi
setup_python=${1:?usage: setup.sh PYTHON VENV_DIR}
venv=${2:?usage: setup.sh PYTHON VENV_DIR}

# shellcheck source=multibuild/common_utils.sh
source "$(dirname "${BASH_SOURCE[0]}")/../multibuild/common_utils.sh"
venv_python=$(_nw_make_venv setup "$setup_python" "$venv") || exit $?
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
