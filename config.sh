# shellcheck shell=bash
# NumPy's hooks for the multibuild contract: pre_build and pip_wheel_cmd (the
# library's build_wheel runs them; README: Layout), pre_repair, run_tests.
# Sourced last (after the library, $ENV_VARS_PATH and configure_build.sh) in
# the build environment and in the test environment.
#
# Depends on: REPO_DIR, PLAT, PYTHON_EXE, PIP_CMD, NW_OPENBLAS_INTERFACE
# (env_vars.sh: ilp64, env_vars32.sh: lp64), TEST_LABEL (numpy.test() label,
# default fast), NW_BUILD_DIR (stable meson build directory, for ccache),
# NW_OPENBLAS_DIR (OpenBLAS prepared on the host), NW_PYTHON (the toolkit's Python).

# The toolkit root: config.sh is sourced from there (natively and in /io).
NW_ROOT=${NW_ROOT:-$PWD}
# threadpoolctl lets run_tests ask the installed NumPy which BLAS it loaded.
TEST_DEPENDS=${TEST_DEPENDS:-threadpoolctl}

# shellcheck source=scripts/toolkit_python.sh
source "$NW_ROOT/scripts/toolkit_python.sh"

# Print the prepared OpenBLAS directory: NW_OPENBLAS_DIR when the host prepared
# it (numpy-wheels build does, before a container step: the toolkit's Python
# does not run in the image, and the build interpreter stays NumPy's own), else
# prepared here by the toolkit's Python (downloads once, then from the cache).
numpy_openblas_dir() {
    if [ -n "${NW_OPENBLAS_DIR:-}" ]; then
        echo "$NW_OPENBLAS_DIR"
        return
    fi
    local python
    python=$(nw_toolkit_python) || return 1
    "$python" "$NW_ROOT/scripts/openblas_support.py"
}

# Print the absolute path of the NumPy source.
# shellcheck disable=SC2153  # REPO_DIR comes from the environment
numpy_source_dir() {
    case "$REPO_DIR" in
        /*) echo "$REPO_DIR" ;;
        *) echo "$NW_ROOT/$REPO_DIR" ;;
    esac
}

# Make OpenBLAS findable by the build (pkg-config) and by the repair tool.
numpy_use_openblas() {
    local basedir
    basedir=$(numpy_openblas_dir)
    export PKG_CONFIG_PATH="$basedir/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export NW_REPAIR_LIBRARY_PATH="$basedir/lib"
}

# Append the bundled-software notice for this OS to the source's LICENSE.txt
# (once: a re-run of an unchanged checkout must not append it twice).
numpy_append_license() {
    local repo_dir=${1:-$REPO_DIR}
    local notice="$NW_ROOT/LICENSE_linux.txt"
    case "$(uname -s)" in
        Darwin) notice="$NW_ROOT/LICENSE_osx.txt" ;;
        MINGW* | MSYS* | CYGWIN*) notice="$NW_ROOT/LICENSE_win32.txt" ;;
    esac
    if [ ! -f "$repo_dir/LICENSE.txt" ]; then
        echo "pre_build: $repo_dir/LICENSE.txt is missing" >&2
        return 1
    fi
    if ! grep -q "also bundles the following software" "$repo_dir/LICENSE.txt"; then
        printf '\n' >>"$repo_dir/LICENSE.txt"
        cat "$notice" >>"$repo_dir/LICENSE.txt"
    fi
}

pre_build() {
    numpy_use_openblas
    numpy_append_license "$REPO_DIR"
    # NumPy's own build requirements (no build isolation: the build venv keeps
    # its paths from one build to the next, so ccache hits on a rebuild).
    local requires source_dir
    source_dir=$(numpy_source_dir)
    # numpy_tools uses the standard library only: it runs in any build Python.
    requires=$(PYTHONPATH="$NW_ROOT/scripts" "$PYTHON_EXE" -m numpy_wheels.build.numpy_tools \
        build-requires "$source_dir")
    # meson-python adds ninja only under build isolation; manylinux images lack it.
    if ! command -v ninja > /dev/null 2>&1; then requires="$requires ninja"; fi
    # shellcheck disable=SC2086,SC2046  # word splitting wanted: one requirement per word
    $PIP_CMD install $(pip_opts) $requires
}

# The library's build_wheel calls this (through build_wheel_cmd) in the source
# directory: pip wheel with meson-python settings for OpenBLAS; a stable build
# dir for ccache.
pip_wheel_cmd() {
    local abs_wheelhouse=$1
    local ilp64=true
    if [ "${NW_OPENBLAS_INTERFACE:-ilp64}" = lp64 ]; then ilp64=false; fi
    # shellcheck disable=SC2046  # pip_opts prints options to split
    $PIP_CMD wheel $(pip_opts) --no-deps --no-build-isolation -w "$abs_wheelhouse" \
        -Cbuild-dir="${NW_BUILD_DIR:-$NW_ROOT/build/meson}" \
        -Csetup-args=-Dblas=scipy-openblas -Csetup-args=-Dlapack=scipy-openblas \
        -Csetup-args=-Duse-ilp64="$ilp64" -Csetup-args=-Dallow-noblas=false .
}

# Called before repair_wheelhouse in its own step: the repair tool must find
# the same OpenBLAS the build linked.
pre_repair() {
    numpy_use_openblas
}

# Runs in an empty directory with the wheel installed in a clean venv.
run_tests() {
    local python=${PYTHON_EXE:-python}
    # NumPy's f2py and config-tool tests run executables by name: this venv first.
    PATH="$(dirname "$(command -v "$python")"):$PATH"
    export PATH
    local source_dir
    source_dir=$(numpy_source_dir)
    # shellcheck disable=SC2046  # pip_opts prints options to split
    $PIP_CMD install $(pip_opts) -r "$source_dir/requirements/test_requirements.txt"
    "$python" -c 'import numpy; numpy.show_config()'
    "$python" -c "import sys, numpy; sys.exit(not numpy.test('${TEST_LABEL:-fast}', \
extra_argv=['-n', 'auto', '--durations=10']))"
    "$python" "$NW_ROOT/scripts/openblas_support.py" --check-version
    PYTHONPATH="$NW_ROOT/scripts" "$python" -m numpy_wheels.build.numpy_tools check-license numpy
}
