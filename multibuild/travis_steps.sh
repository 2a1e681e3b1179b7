#!/bin/bash
# CI entry point (despite the name, not Travis-specific): makes $WHEEL_SDIR and
# sources the host-side steps for this OS (travis_osx_steps.sh,
# travis_windows_steps.sh or travis_linux_steps.sh), which define
# before_install, build_wheel, build_index_wheel and install_run.
set -e

TRAVIS_STEPS_DIR=$(dirname "${BASH_SOURCE[0]}")
WHEEL_SDIR=${WHEEL_SDIR:-wheelhouse}
# Relative to $PWD, or absolute (multibuild's "$PWD/$WHEEL_SDIR" was not).
mkdir -p -- "$WHEEL_SDIR"

case "$(uname)" in
    Darwin)
        # shellcheck source=multibuild/travis_osx_steps.sh
        source "$TRAVIS_STEPS_DIR/travis_osx_steps.sh"
        ;;
    MINGW* | MSYS* | CYGWIN*)
        # Git Bash / MSYS2 / Cygwin on Windows
        # shellcheck source=multibuild/travis_windows_steps.sh
        source "$TRAVIS_STEPS_DIR/travis_windows_steps.sh"
        ;;
    *)
        # shellcheck source=multibuild/travis_linux_steps.sh
        source "$TRAVIS_STEPS_DIR/travis_linux_steps.sh"
        ;;
esac
