#!/bin/bash
# Utilities for both macOS and Linux builds; use with `source common_utils.sh`.
#
# multibuild's public names, arguments, stdout and exit status; its known bugs
# (quotes in paths, temporary files in the cwd, `exit` in sourced functions,
# leaked globals, distutils) are not copied.  Internal helpers are `_nw_*`.
# shellcheck disable=SC2034  # version and platform variables are read by callers
if [ -n "$COMMON_UTILS_SOURCED" ]; then return; fi
COMMON_UTILS_SOURCED=1

# Turn on exit-on-error, as multibuild does: config.sh hooks rely on it.
set -e

# Our own location on this filesystem (relative when sourced by a relative path).
MULTIBUILD_DIR=$(dirname "${BASH_SOURCE[0]}")

# Which host this shell is: linux, macos or windows once the host steps
# (travis_*_steps.sh) are sourced.  Empty in a build or test environment (the
# wrap scripts, a container), where build_wheel and install_run do the work
# themselves; on a host they hand it to that environment.
_NW_HOST=""

# Unicode width, only relevant for Python 2.
UNICODE_WIDTH=${UNICODE_WIDTH:-32}

if [ "$(uname)" == "Darwin" ]; then
    IS_MACOS=1
    IS_OSX=1
else
    # The manylinux images have no `python` on PATH; pick one if we are in one.
    if ! command -v python > /dev/null 2>&1 && [ -x /opt/python/cp39-cp39/bin/python ]; then
        PATH=/opt/python/cp39-cp39/bin:$PATH
    fi
fi

# NW_ML_VER_GIVEN: 1 when the caller chose MB_ML_VER (before the default below),
# so repair_wheelhouse targets that policy; empty lets auditwheel pick the best.
NW_ML_VER_GIVEN=${MB_ML_VER:+1}
if [ "$MB_ML_LIBC" == "musllinux" ]; then
    IS_ALPINE=1
    MB_ML_VER=${MB_ML_VER:-_1_2}
else
    MB_ML_VER=${MB_ML_VER:-2014}
fi

# Work round Travis/rvm bugs that redefine cd and friends.
function shell_session_update { :; }
unset -f cd pushd popd

function _nw_err {
    # Print an error line to stderr.
    # Parameters: message words
    echo "$*" >&2
}

function _nw_alive { # <pid>
    # Succeed if process PID runs (a zombie, whose parent has not reaped it, does not).
    local state
    state=$(ps -o stat= -p "$1" 2> /dev/null) || return 1
    [[ $state != Z* ]]
}

function start_spinner {
    # Print "Still building..." to stderr every 60 s until stop_spinner.
    # Keeps long quiet builds alive on CI.  The loop watches its parent shell
    # and ends within a second when that shell goes away.
    # Depends on: MB_SPINNER_PID (set here), NW_SPINNER_INTERVAL (seconds, 60)
    if [ -n "$MB_SPINNER_PID" ]; then
        return
    fi
    local parent=${BASHPID:-$$}  # bash 3.2 (macOS) has no BASHPID
    local interval=${NW_SPINNER_INTERVAL:-60}
    >&2 echo "Building libraries..."
    (
        trap 'exit 0' TERM
        local ticks=0
        while _nw_alive "$parent"; do
            sleep 1 &
            wait $! || exit 0
            ticks=$((ticks + 1))
            if [ "$ticks" -ge "$interval" ]; then
                >&2 echo "Still building..."
                ticks=0
            fi
        done
    ) &
    MB_SPINNER_PID=$!
    disown
}

function stop_spinner {
    # Stop the loop started by start_spinner, if any.
    # Depends on: MB_SPINNER_PID; prints "Building libraries finished." to stderr
    if [ -z "$MB_SPINNER_PID" ]; then
        return
    fi
    kill "$MB_SPINNER_PID" 2> /dev/null || true
    unset MB_SPINNER_PID
    >&2 echo "Building libraries finished."
}

function any_python {
    # Print the command of a Python interpreter: $PYTHON_EXE, python3 or python.
    # Depends on: PYTHON_EXE (optional)
    local cmd
    for cmd in "$PYTHON_EXE" python3 python; do
        if [ -n "$cmd" ] && type -t "$cmd" > /dev/null; then
            echo "$cmd"
            return
        fi
    done
    _nw_err "Could not find python or python3"
    return 1
}

function _nw_py {
    # Run Python code with any_python; extra arguments go to sys.argv[1:].
    # Parameters: code [args...]
    local py
    py=$(any_python) || return 1
    "$py" -c "$@"
}

function abspath {
    # Print the absolute path of PATH (symlinks not resolved).
    # Parameters: path
    _nw_py 'import os, sys; print(os.path.abspath(sys.argv[1]))' "$1"
}

function relpath {
    # Print PATH relative to START.
    # Parameters: path [start=$PWD]
    _nw_py 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$1" "${2:-$PWD}"
}

function realpath {
    # Print the canonical path of PATH (symlinks resolved).
    # Parameters: path
    _nw_py 'import os, sys; print(os.path.realpath(sys.argv[1]))' "$1"
}

function lex_ver { # <version>
    # Print a version as a 9-digit string that sorts lexically: 2.1.4rc1 -> 002001004.
    # Missing parts are 0; each part is its leading digits; a 4th part is ignored.
    # A part over 999 is an error (stderr, return 1).
    local ver=$1
    local -a parts
    IFS=. read -r -a parts <<< "$ver"
    local out="" i part num
    for i in 0 1 2; do
        part=${parts[$i]:-}
        num=0
        if [[ $part =~ ^([0-9]+) ]]; then
            num=$((10#${BASH_REMATCH[1]}))
        fi
        if [ "$num" -gt 999 ]; then
            _nw_err "lex_ver: component '$part' of '$ver' is over 999"
            return 1
        fi
        out+=$(printf "%03d" "$num")
    done
    echo "$out"
}

function unlex_ver { # <lexed version>
    # Inverse of lex_ver: 003002012 -> 3.2.12; characters after the 9th are ignored.
    local lex=$1
    if ! [[ ${lex:0:9} =~ ^[0-9]{9}$ ]]; then
        _nw_err "unlex_ver: '$lex' is not a lex_ver string"
        return 1
    fi
    echo "$((10#${lex:0:3})).$((10#${lex:3:3})).$((10#${lex:6:3}))"
}

function strip_ver_suffix { # <version>
    # Print major.minor.micro without any suffix: 3.4.0rc1 -> 3.4.0.
    local lexed
    lexed=$(lex_ver "$1") || return 1
    unlex_ver "$lexed"
}

function is_function { # <name>
    # Print "true" if NAME is a shell function, nothing otherwise (never runs it).
    # Returns 1 when NAME is not a function, as multibuild's does.
    (set +e; declare -Ff "$1" > /dev/null && echo true)
}

function gh_clone { # <owner/repo>
    # Clone a GitHub repository into the current directory.
    git clone "https://github.com/$1"
}

function set_opts { # <option string as in $->
    # Set or unset the shell options e x h m B H to match the option string.
    local opts=$1
    local opt
    for opt in e x h m B H; do
        if [[ $opts == *"$opt"* ]]; then
            set "-$opt"
        else
            set "+$opt"
        fi
    done
}

function _nw_errexit_on {
    # Succeed if `set -e` is on in the calling shell.
    [[ $- == *e* ]]
}

function suppress {
    # Run a command, showing its output only if it fails.
    # Prints "Running CMD ARGS"; the output goes to a file under $TMPDIR that a trap
    # removes.  The command runs in a subshell with the caller's `set -e` setting.
    # Parameters: cmd [args...]; returns the command's status
    if [ $# -eq 0 ]; then
        _nw_err "suppress: no command given"
        return 1
    fi
    echo "Running $*"
    local errexit="" status
    if _nw_errexit_on; then errexit=1; fi
    set +e
    (
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/nw-suppress.XXXXXXXX") || exit 1
        trap 'rm -rf -- "$tmp"' EXIT
        (
            if [ -n "$errexit" ]; then set -e; fi
            "$@"
        ) > "$tmp/output" 2>&1
        rc=$?
        if [ "$rc" -ne 0 ]; then cat "$tmp/output"; fi
        exit "$rc"
    )
    status=$?
    if [ -n "$errexit" ]; then set -e; fi
    return "$status"
}

function expect_return {
    # Run a command in a subshell and succeed if it returns the expected code.
    # Parameters: code cmd [args...]
    # Returns 0 on the expected code, else the command's code (1 if it was 0).
    if [ $# -lt 2 ]; then
        _nw_err "Must have at least 2 arguments"
        return 1
    fi
    local expected=$1
    shift
    local errexit="" status
    if _nw_errexit_on; then errexit=1; fi
    set +e
    (
        if [ -n "$errexit" ]; then set -e; fi
        "$@"
    )
    status=$?
    if [ -n "$errexit" ]; then set -e; fi
    if [ "$status" -eq "$expected" ]; then
        return 0
    elif [ "$status" -eq 0 ]; then
        return 1
    fi
    return "$status"
}

function cmd_notexit {
    # Run a command in a subshell without `set -e`; return its status.
    # Parameters: cmd [args...]
    if [ $# -eq 0 ]; then
        _nw_err "no command"
        return 1
    fi
    local errexit="" status
    if _nw_errexit_on; then errexit=1; fi
    set +e
    ("$@")
    status=$?
    if [ -n "$errexit" ]; then set -e; fi
    return "$status"
}

function rm_mkdir { # <path>
    # Remove directory PATH if present, then make it empty.
    local path=$1
    if [ -z "$path" ]; then
        _nw_err "Need not-empty path"
        return 1
    fi
    if [ -d "$path" ]; then
        rm -rf -- "$path"
    fi
    mkdir -- "$path"
}

function untar { # <archive>
    # Extract an archive into the current directory, by its last extension:
    # tar, gz/tgz, bz2, xz, zip.
    local in_fname=$1
    if [ -z "$in_fname" ]; then
        _nw_err "untar: need an archive name"
        return 1
    fi
    case "${in_fname##*.}" in
        tar) tar -xf "$in_fname" ;;
        gz | tgz) tar -zxf "$in_fname" ;;
        bz2) tar -jxf "$in_fname" ;;
        xz) tar -Jxf "$in_fname" ;;
        zip) unzip -qq "$in_fname" ;;
        *)
            _nw_err "Did not recognize extension of '$in_fname'"
            return 1
            ;;
    esac
}

function install_rsync {
    # Make sure rsync is installed (system package manager).
    if command -v rsync > /dev/null 2>&1 || [ -n "$IS_MACOS" ]; then
        return
    fi
    if [ -n "$IS_ALPINE" ]; then
        apk add rsync
    elif command -v apt-get > /dev/null 2>&1; then
        apt-get install -y rsync
    else
        yum install -y rsync
    fi
}

function _nw_curl_to { # <url> <dest>
    # Download URL to DEST via a temporary name, with retries; no partial DEST.
    local url=$1 dest=$2
    local part="$dest.part.$$"
    if ! curl -fsSL --retry 5 --retry-delay 2 -o "$part" "$url"; then
        rm -f -- "$part"
        _nw_err "download failed: $url"
        return 1
    fi
    mv -f -- "$part" "$dest"
}

function fetch_unpack {
    # Fetch an archive (unless already in $ARCHIVE_SDIR) and unpack it into the cwd.
    # Parameters: url [archive_fname=basename of url]
    # Depends on: ARCHIVE_SDIR (default archives), MULTIBUILD_DIR
    # Prints the top-level names in the archive.
    local url=$1
    if [ -z "$url" ]; then
        _nw_err "fetch_unpack: url not defined"
        return 1
    fi
    local archive_fname=${2:-$(basename "$url")}
    local arch_sdir=${ARCHIVE_SDIR:-archives}
    local out_archive="$arch_sdir/$archive_fname"
    mkdir -p "$arch_sdir"
    if [ ! -f "$out_archive" ]; then
        if [ -f "$MULTIBUILD_DIR/archives/$archive_fname" ]; then
            ln -s "$(abspath "$MULTIBUILD_DIR/archives/$archive_fname")" "$out_archive"
        else
            _nw_curl_to "$url" "$out_archive" >&2 || return 1
        fi
    fi
    local abs_archive tmp
    abs_archive=$(abspath "$out_archive")
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/nw-unpack.XXXXXXXX")
    (
        trap 'rm -rf -- "$tmp"' EXIT
        set -e
        cd "$tmp"
        untar "$abs_archive" >&2
        cd - > /dev/null
        local name
        for name in "$tmp"/* "$tmp"/.[!.]*; do
            [ -e "$name" ] || continue
            basename "$name"
            rm -rf -- "./$(basename "$name")"
            mv -- "$name" .
        done
    )
}

function _nw_git_origin_url { # <repo_dir>
    # Print remote.origin.url of a repository, or nothing.
    git -C "$1" config --get remote.origin.url || true
}

function fill_submodule { # <repo_dir>
    # Give a submodule checkout a self-contained .git directory (for versioneer,
    # containers): clone it next to itself and move the clone into place.
    local repo_dir=$1
    if [ -z "$repo_dir" ]; then
        _nw_err "fill_submodule: repo_dir not defined"
        return 1
    fi
    if [ ! -d "$repo_dir" ]; then
        _nw_err "fill_submodule: repository directory '$repo_dir' not found"
        return 1
    fi
    if [ -d "$repo_dir/.git" ]; then
        return
    fi
    if [ ! -e "$repo_dir/.git" ]; then
        _nw_err "fill_submodule: '$repo_dir' is not a git checkout"
        return 1
    fi
    local origin_url parent copy
    origin_url=$(_nw_git_origin_url "$repo_dir")
    parent=$(dirname "$repo_dir")
    copy=$(mktemp -d "$parent/.nw-fill.XXXXXXXX")
    if ! git clone -q --recursive "$repo_dir" "$copy/repo"; then
        rm -rf -- "$copy"
        _nw_err "fill_submodule: could not clone '$repo_dir'"
        return 1
    fi
    rm -rf -- "$repo_dir"
    mv -- "$copy/repo" "$repo_dir"
    rmdir -- "$copy"
    if [ -n "$origin_url" ]; then
        git -C "$repo_dir" remote set-url origin "$origin_url"
    fi
}

function clean_code {
    # Check out BUILD_COMMIT in REPO_DIR and clean it: fetch origin (with tags),
    # checkout, clean -fxd, reset --hard, update submodules recursively.
    # Parameters: [repo_dir=$REPO_DIR] [build_commit=$BUILD_COMMIT]
    local repo_dir=${1:-$REPO_DIR}
    local build_commit=${2:-$BUILD_COMMIT}
    if [ -z "$repo_dir" ]; then
        _nw_err "clean_code: repository directory not defined (pass it or set REPO_DIR)"
        return 1
    fi
    if [ -z "$build_commit" ]; then
        _nw_err "clean_code: commit not defined (pass it or set BUILD_COMMIT)"
        return 1
    fi
    if [ ! -d "$repo_dir" ]; then
        _nw_err "clean_code: repository directory '$repo_dir' not found"
        return 1
    fi
    fill_submodule "$repo_dir" || return 1
    if [ -n "$(_nw_git_origin_url "$repo_dir")" ]; then
        git -C "$repo_dir" fetch -q origin --tags || {
            _nw_err "clean_code: git fetch origin failed in '$repo_dir'"
            return 1
        }
    fi
    if ! git -C "$repo_dir" rev-parse -q --verify "$build_commit^{commit}" > /dev/null \
        && ! git -C "$repo_dir" rev-parse -q --verify "origin/$build_commit^{commit}" > /dev/null; then
        _nw_err "clean_code: commit '$build_commit' not found in '$repo_dir'"
        return 1
    fi
    git -C "$repo_dir" checkout -q -f "$build_commit" \
        && git -C "$repo_dir" clean -fxdq \
        && git -C "$repo_dir" reset -q --hard \
        && git -C "$repo_dir" submodule update -q --init --recursive
}

function _nw_pip {
    # Run pip: $PIP_CMD (word-split, as multibuild does) or `any_python -m pip`.
    # Parameters: pip arguments
    # Depends on: PIP_CMD, PYTHON_EXE
    local -a cmd
    if [ -n "$PYTHON_EXE" ] && [ "$PIP_CMD" == "$PYTHON_EXE -m pip" ]; then
        cmd=("$PYTHON_EXE" -m pip) # a path with spaces stays one word
    elif [ -n "$PIP_CMD" ]; then
        read -r -a cmd <<< "$PIP_CMD"
    else
        cmd=("$(any_python)" -m pip) || return 1
    fi
    "${cmd[@]}" "$@"
}

function _nw_pip_opts_array {
    # Split the output of pip_opts (overridable) into the array named _nw_opts.
    local opts
    opts=$(pip_opts)
    # shellcheck disable=SC2034  # read by the caller
    read -r -a _nw_opts <<< "$opts"
}

function _nw_pre_build {
    # Run the project's pre_build hook (if defined) inside the spinner.
    start_spinner
    if [ -n "$(is_function "pre_build")" ]; then
        pre_build
    fi
    stop_spinner
}

function _nw_maybe_repair { # <wheelhouse>
    # End of a build: repair_wheelhouse WHEELHOUSE unless NW_DEFER_REPAIR=1.
    # Depends on: NW_DEFER_REPAIR
    if [ "$NW_DEFER_REPAIR" == "1" ]; then
        return
    fi
    if [ -z "$(is_function repair_wheelhouse)" ]; then
        _nw_err "repair_wheelhouse is not defined (source manylinux_utils.sh or osx_utils.sh, or set NW_DEFER_REPAIR=1)"
        return 1
    fi
    repair_wheelhouse "$1"
}

function build_wheel_cmd {
    # Build a wheel of REPO_DIR into $WHEEL_SDIR, then repair it.
    # Parameters: [cmd=pip_wheel_cmd] [repo_dir=$REPO_DIR]
    # Depends on: WHEEL_SDIR (wheelhouse), BUILD_DEPENDS, PIP_CMD, NW_DEFER_REPAIR,
    #   and the hooks pre_build, pip_opts, repair_wheelhouse
    local builder=${1:-pip_wheel_cmd}
    local repo_dir=${2:-$REPO_DIR}
    if [ -z "$repo_dir" ]; then
        _nw_err "build_wheel_cmd: repo_dir not defined (pass it or set REPO_DIR)"
        return 1
    fi
    local wheelhouse
    wheelhouse=$(abspath "${WHEEL_SDIR:-wheelhouse}")
    mkdir -p "$wheelhouse"
    _nw_pre_build
    if [ -n "$BUILD_DEPENDS" ]; then
        local -a _nw_opts deps
        _nw_pip_opts_array
        read -r -a deps <<< "$BUILD_DEPENDS"
        _nw_pip install "${_nw_opts[@]}" "${deps[@]}"
    fi
    (cd "$repo_dir" && "$builder" "$wheelhouse")
    _nw_maybe_repair "$wheelhouse"
}

function pip_wheel_cmd { # <abs wheelhouse>
    # Build the project in the cwd with `pip wheel --no-deps` into WHEELHOUSE.
    local -a _nw_opts
    _nw_pip_opts_array
    _nw_pip wheel "${_nw_opts[@]}" -w "$1" --no-deps .
}

function wrap_wheel_builder {
    # Run a wheel builder command; osx_utils.sh and projects override this.
    "$@"
}

function build_pip_wheel {
    # Build with `pip wheel`.  Parameters: [repo_dir]
    wrap_wheel_builder build_wheel_cmd pip_wheel_cmd "$@"
}

function build_wheel {
    # Build the wheel of REPO_DIR into $WHEEL_SDIR, repaired unless
    # NW_DEFER_REPAIR=1: the build's one entry point, on every platform.
    # In the build environment (a macOS or Windows host, a Linux container, or
    # docker_build_wrap.sh run natively) it is build_pip_wheel: the per-arch
    # setup of wrap_wheel_builder (macOS) around build_wheel_cmd, which runs the
    # hooks pre_build, pip_wheel_cmd and repair_wheelhouse.  On the Linux host
    # (_NW_HOST=linux) it runs this same call in the build environment with
    # build_multilinux; $CONFIG_PATH is sourced there, so a config.sh
    # build_wheel wins, as on macOS and Windows, where config.sh is sourced
    # after this file.
    # Parameters: [repo_dir=$REPO_DIR] [plat=${PLAT:-x86_64}] (plat: Linux host)
    if [ "$_NW_HOST" == linux ]; then
        _nw_build_on_linux_host build_wheel "${1:-$REPO_DIR}" "${2:-}"
        return
    fi
    build_pip_wheel "${1:-}"
}

function build_index_wheel_cmd {
    # Build a wheel of SPEC from the package index into $WHEEL_SDIR, then repair it.
    # Parameters: spec [pip args...]
    # Depends on: WHEEL_SDIR, BUILD_DEPENDS, PIP_CMD, NW_DEFER_REPAIR, pre_build
    local spec=$1
    if [ -z "$spec" ]; then
        _nw_err "build_index_wheel_cmd: project spec not defined"
        return 1
    fi
    shift
    local wheelhouse
    wheelhouse=$(abspath "${WHEEL_SDIR:-wheelhouse}")
    mkdir -p "$wheelhouse"
    _nw_pre_build
    local -a _nw_opts deps
    _nw_pip_opts_array
    if [ -n "$BUILD_DEPENDS" ]; then
        read -r -a deps <<< "$BUILD_DEPENDS"
        _nw_pip install "${_nw_opts[@]}" "$@" "${deps[@]}"
    fi
    _nw_pip wheel "${_nw_opts[@]}" "$@" -w "$wheelhouse" --no-deps "$spec"
    _nw_maybe_repair "$wheelhouse"
}

function build_index_wheel {
    # Build a wheel of SPEC from the package index into $WHEEL_SDIR, repaired
    # unless NW_DEFER_REPAIR=1; on the Linux host in the build environment, as
    # build_wheel does.
    # Parameters: spec [pip args...]; on the Linux host: spec [plat=${PLAT:-x86_64}]
    if [ "$_NW_HOST" == linux ]; then
        _nw_build_on_linux_host build_index_wheel "${1:-}" "${2:-}"
        return
    fi
    wrap_wheel_builder build_index_wheel_cmd "$@"
}

function pip_opts {
    # Print extra options for every pip call, on one line: --find-links
    # $MANYLINUX_URL if set; --uploaded-prior-to $NW_DEPS_AS_OF (requirements
    # as of the source's date, see scripts/deps_as_of.py), upgrading a pip
    # older than 26.0, which lacks it.
    local opts=""
    if [ -n "$MANYLINUX_URL" ]; then
        opts="--find-links $MANYLINUX_URL"
    fi
    if [ -n "$NW_DEPS_AS_OF" ]; then
        if ! _nw_pip install --help 2> /dev/null | grep -q -- --uploaded-prior-to; then
            _nw_pip install --quiet --upgrade 'pip>=26' >&2 || return 1
        fi
        opts="${opts:+$opts }--uploaded-prior-to $NW_DEPS_AS_OF"
    fi
    if [ -n "$opts" ]; then echo "$opts"; fi
}

function get_os {
    # Print the OS name (platform.uname()[0]): Linux, Darwin, Windows.
    _nw_py 'import platform; print(platform.uname()[0])'
}

function get_platform {
    # Print the machine name (platform.uname()[4]): x86_64, aarch64, arm64...
    _nw_py 'import platform; print(platform.uname()[4])'
}

function get_distutils_platform {
    # Print the platform of $PYTHON_EXE as distutils did (sysconfig.get_platform()).
    check_python || return 1
    "$PYTHON_EXE" -c 'import sysconfig; print(sysconfig.get_platform())'
}

# shellcheck disable=SC2120  # pip args are optional
function install_wheel {
    # Install TEST_DEPENDS and the supported wheel(s) from $WHEEL_SDIR.
    # Parameters: [pip args...] (passed to every pip install)
    # Depends on: WHEEL_SDIR, TEST_DEPENDS (one pip install per line), PYTHON_EXE,
    #   PIP_CMD, MULTIBUILD_DIR
    local wheelhouse
    wheelhouse=$(abspath "${WHEEL_SDIR:-wheelhouse}")
    check_pip || return 1
    check_python || return 1
    local -a _nw_opts reqs
    _nw_pip_opts_array
    local line
    if [ -n "$TEST_DEPENDS" ]; then
        while IFS= read -r line; do
            read -r -a reqs <<< "$line"
            if [ "${#reqs[@]}" -gt 0 ]; then
                _nw_pip install "${_nw_opts[@]}" "$@" "${reqs[@]}"
            fi
        done <<< "$TEST_DEPENDS"
    fi
    if ! "$PYTHON_EXE" -c 'import packaging.tags' 2> /dev/null \
        && ! "$PYTHON_EXE" -c 'import pip._vendor.packaging.tags' 2> /dev/null; then
        _nw_pip install "${_nw_opts[@]}" "$@" packaging
    fi
    local -a wheels=() supported=()
    local whl
    for whl in "$wheelhouse"/*.whl; do
        if [ -e "$whl" ]; then wheels+=("$whl"); fi
    done
    if [ "${#wheels[@]}" -gt 0 ]; then
        local listing
        listing=$("$PYTHON_EXE" "$MULTIBUILD_DIR/supported_wheels.py" "${wheels[@]}")
        while IFS= read -r line; do
            if [ -n "$line" ]; then supported+=("$line"); fi
        done <<< "$listing"
    fi
    if [ "${#supported[@]}" -eq 0 ]; then
        _nw_err "ERROR: no supported wheels found in $wheelhouse"
        return 1
    fi
    _nw_pip install "${_nw_opts[@]}" "$@" "${supported[@]}"
}

function _nw_check_repair_input { # <in_dir>
    # Fail with one line unless IN_DIR (the wheels to repair) is a directory.
    local in_dir=$1
    if [ -z "$in_dir" ]; then
        _nw_err "repair_wheelhouse: input directory not defined"
        return 1
    fi
    if [ ! -d "$in_dir" ]; then
        _nw_err "repair_wheelhouse: input directory '$in_dir' not found"
        return 1
    fi
}

function _nw_place_wheel { # <wheel> <out_dir>
    # Copy WHEEL into OUT_DIR under a hidden temporary name, then rename it, so
    # OUT_DIR never holds a partial wheel.  Nothing to do if it is already there.
    local whl=$1 out_dir=$2
    local name
    name=$(basename "$whl")
    if [ "$whl" -ef "$out_dir/$name" ]; then
        return
    fi
    cp -- "$whl" "$out_dir/.$name.nw-part"
    mv -f -- "$out_dir/.$name.nw-part" "$out_dir/$name"
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

function _nw_need_tool { # <command>
    # Fail with one line unless COMMAND (a repair tool pip installs) is on PATH.
    if ! command -v "$1" > /dev/null 2>&1; then
        _nw_err "repair_wheelhouse: $1 not found on PATH (pip install $1)"
        return 1
    fi
}

function _nw_repair_staged() ( # <tool> <plain count> <wheel> <out_dir> <in_dir> <tool_fn> [args...]
    # Repair one wheel with `TOOL_FN WHEEL TMPDIR [ARGS...]` into a temporary
    # directory (removed by a trap), check that exactly one wheel came out, and
    # place it in OUT_DIR; drop the input if it was repaired in place under
    # another name.  TOOL names the tool in the count errors; PLAIN_COUNT=1
    # reports no wheel as "wrote 0 wheels", not "succeeded but wrote no wheel".
    tool=$1
    plain_count=$2
    whl=$3
    out_dir=$4
    in_dir=$5
    shift 5
    name=$(basename "$whl")
    tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/nw-repair.XXXXXXXX") || exit 1
    trap 'rm -rf -- "$tmpdir"' EXIT
    "$1" "$whl" "$tmpdir" "${@:2}" || exit 1
    built=()
    for f in "$tmpdir"/*.whl; do
        if [ -e "$f" ]; then built+=("$f"); fi
    done
    if [ "${#built[@]}" -eq 0 ] && [ -z "$plain_count" ]; then
        _nw_err "repair_wheelhouse: $tool succeeded but wrote no wheel for $name"
        exit 1
    elif [ "${#built[@]}" -ne 1 ]; then
        _nw_err "repair_wheelhouse: $tool wrote ${#built[@]} wheels for $name, expected one"
        exit 1
    fi
    _nw_place_wheel "${built[0]}" "$out_dir"
    if [ "$out_dir" -ef "$in_dir" ] && [ "$(basename "${built[0]}")" != "$name" ]; then
        rm -f -- "$whl"
    fi
)

function _nw_repair_each {
    # The loop of every repair_wheelhouse: repair each platform wheel in IN_DIR
    # into OUT_DIR (made if missing) with `TOOL_FN WHEEL DEST_DIR [TOOL_ARGS...]`,
    # which runs the repair tool for one wheel and prints its own "could not
    # repair" line on failure; pure wheels (*-any.whl) are copied through.
    # Staged (the default): DEST_DIR is a fresh temporary directory, exactly one
    # wheel must come out, and it reaches OUT_DIR under a hidden name first (see
    # _nw_repair_staged); when repairing in place fails, the input is renamed
    # *.whl.unrepaired so no later step takes it for a repaired wheel.
    # --direct: DEST_DIR is OUT_DIR itself (delocate-wheel, as in multibuild);
    # nothing is counted or set aside.
    # Parameters: [--direct] [--plain-count] in_dir out_dir tool tool_fn [tool_args...]
    #   in_dir: checked by _nw_check_repair_input first; tool: named in errors;
    #   --plain-count: see _nw_repair_staged
    # Returns 1 at the first wheel that fails.
    local direct="" plain_count=""
    while [[ $1 == --* ]]; do
        case "$1" in
            --direct) direct=1 ;;
            --plain-count) plain_count=1 ;;
            *)
                _nw_err "_nw_repair_each: unknown option '$1'"
                return 1
                ;;
        esac
        shift
    done
    local in_dir=$1 out_dir=$2 tool=$3
    shift 3
    mkdir -p "$out_dir"
    local whl name
    for whl in "$in_dir"/*.whl; do
        [ -e "$whl" ] || continue
        name=$(basename "$whl")
        if [[ $name == *-any.whl ]]; then
            _nw_place_wheel "$whl" "$out_dir"
        elif [ -n "$direct" ]; then
            "$1" "$whl" "$out_dir" "${@:2}" || return 1
        elif ! _nw_repair_staged "$tool" "$plain_count" "$whl" "$out_dir" "$in_dir" "$@"; then
            if [ "$in_dir" -ef "$out_dir" ] && [ -e "$whl" ]; then
                mv -f -- "$whl" "$whl.unrepaired"
                _nw_err "repair_wheelhouse: moved the unrepaired wheel aside to $name.unrepaired"
            fi
            return 1
        fi
    done
}

function install_run {
    # Install the wheel(s) of $WHEEL_SDIR into a clean environment and run the
    # project's run_tests there: the test step's one entry point, on every
    # platform.
    # In the test environment (docker_test_wrap.sh: a test container, or a
    # fresh venv) it installs with install_wheel (TEST_DEPENDS, then the
    # supported wheels) and runs run_tests in a fresh empty directory directly
    # under the cwd (see _nw_run_tests_in_fresh_dir).  On a host (travis_steps.sh
    # sourced: _NW_HOST) it makes that environment and runs this same call
    # there: on Linux in a container of DOCKER_TEST_IMAGE (default DOCKER_IMAGE)
    # for PLAT (_nw_test_on_linux_host); with DOCKER_IMAGE empty, and on macOS
    # and Windows, natively in a fresh venv made from PYTHON_EXE and removed
    # afterwards (_nw_native_test).  $CONFIG_PATH is sourced in the test
    # environment, so a config.sh install_run wins there, and on the macOS and
    # Windows hosts, where config.sh is sourced after this file.
    # Parameters: [plat=${PLAT:-x86_64}] (Linux host; install_wheel's pip args
    #   are not passed, as in multibuild)
    # Depends on: run_tests (from $CONFIG_PATH), what install_wheel reads; on a
    #   host what _nw_test_on_linux_host or _nw_native_test reads
    # Returns run_tests' status; 125 when the test container could not be
    # pulled or started (an infrastructure error, not a test failure).
    if [ "$_NW_HOST" == linux ]; then
        _nw_test_on_linux_host "${1:-${PLAT:-x86_64}}"
        return
    elif [ -n "$_NW_HOST" ]; then
        _nw_native_test "$MULTIBUILD_DIR/docker_test_wrap.sh"
        return
    fi
    if [ -z "$(is_function run_tests)" ]; then
        _nw_err "install_run: run_tests is not defined in ${CONFIG_PATH:-config.sh}"
        return 1
    fi
    # shellcheck disable=SC2119  # install_run passes no pip args, as multibuild's
    install_wheel
    _nw_run_tests_in_fresh_dir
}

function _nw_run_tests_in_fresh_dir() (
    # Run run_tests in its own new directory ./tmp_for_test.XXXXXXXX, removed by
    # a trap even when run_tests fails, so runs at the same time in one root
    # (or a tmp_for_test left from before) never share or delete each other's.
    # run_tests runs in a nested subshell, so a trap it sets cannot replace ours.
    test_dir=$(mktemp -d "$PWD/tmp_for_test.XXXXXXXX") || {
        _nw_err "install_run: cannot make a test directory in $PWD"
        exit 1
    }
    trap 'rm -rf -- "$test_dir"' EXIT
    cd "$test_dir" || exit 1
    (run_tests)
)

function _nw_venv_python { # <venv dir>
    # Print the interpreter of the virtualenv VENV_DIR: VENV_DIR/Scripts/python
    # for a Windows Python (Scripts/ layout), VENV_DIR/bin/python otherwise.
    if [ -d "$1/Scripts" ]; then
        echo "$1/Scripts/python"
    else
        echo "$1/bin/python"
    fi
}

function _nw_interpreter_id { # <python>
    # Print which interpreter PYTHON is, or runs on for a venv's: the real path
    # of its base executable and its full version; nothing if it does not run.
    "$1" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)), sys.version)' 2> /dev/null || true
}

function _nw_make_venv { # <caller> <python> <venv dir> [stamp] [package...]
    # The one venv maker (make setup's .venv, the build venv, before_install's
    # work venv, install_run's test venv): make VENV_DIR a virtualenv of PYTHON
    # (`PYTHON -m venv`, either layout) and print its interpreter (see
    # _nw_venv_python).  A venv already there is kept when it runs on PYTHON's
    # interpreter (_nw_interpreter_id) and was made for the same STAMP (e.g. a
    # requirements date: pip never downgrades what satisfies a requirement);
    # another venv there is made anew; anything else there is an error.  A venv
    # it makes gets each PACKAGE upgraded; one it could not make is removed.
    # CALLER starts each line it writes to stderr.
    # Returns 2 when PYTHON is not found, 1 on other errors.
    local caller=$1 python=$2 venv_dir=$3 stamp=${4:-}
    if [ $# -ge 4 ]; then shift 4; else shift $#; fi
    local stamp_file="$venv_dir/nw-venv-stamp.txt"
    if ! command -v "$python" > /dev/null 2>&1; then
        _nw_err "$caller: Python interpreter '$python' not found (set PYTHON=...)"
        return 2
    fi
    if [ -f "$venv_dir/pyvenv.cfg" ]; then
        local why="" made_for=""
        if [ -f "$stamp_file" ]; then made_for=$(cat "$stamp_file"); fi
        if [ "$(_nw_interpreter_id "$(_nw_venv_python "$venv_dir")")" != "$(_nw_interpreter_id "$python")" ]; then
            why="it runs on another interpreter"
        elif [ "$made_for" != "$stamp" ]; then
            why="it was made for '$made_for', not '$stamp'"
        else
            _nw_venv_python "$venv_dir"
            return
        fi
        _nw_err "$caller: making $venv_dir anew with $python ($why)"
        rm -rf -- "$venv_dir"
    elif [ -n "$(ls -A "$venv_dir" 2> /dev/null)" ]; then
        _nw_err "$caller: $venv_dir is not a virtualenv (no pyvenv.cfg); remove it or choose another directory"
        return 1
    else
        _nw_err "$caller: creating $venv_dir with $python"
    fi
    local venv_python
    if "$python" -m venv "$venv_dir" >&2; then
        venv_python=$(_nw_venv_python "$venv_dir")
        if [ $# -eq 0 ] || "$venv_python" -m pip install --quiet \
            --disable-pip-version-check --upgrade "$@" >&2; then
            if [ -n "$stamp" ]; then echo "$stamp" > "$stamp_file"; fi
            echo "$venv_python"
            return
        fi
    fi
    rm -rf -- "$venv_dir"
    _nw_err "$caller: could not make a venv in $venv_dir with $python"
    return 1
}

function _nw_work_venv { # <venv dir, relative to the cwd>
    # before_install's venv on every host: make (_nw_make_venv) and activate a
    # virtualenv VENV_DIR from the caller's interpreter, and upgrade
    # NW_VENV_PACKAGES in it.  Prints the venv's Python version.
    # Depends on: PYTHON_EXE (optional), MB_PYTHON_VERSION (optional; without
    #   PYTHON_EXE selects pythonX.Y from PATH), NW_VENV_PACKAGES (default
    #   "pip wheel", empty for none)
    # Sets and exports PYTHON_EXE and PIP_CMD.
    local venv_dir=$1
    local base_python venv_python
    base_python=$(_nw_base_python) || return 1
    venv_python=$(_nw_make_venv before_install "$base_python" "$venv_dir") || return 1
    case "$venv_python" in
        /*) PYTHON_EXE=$venv_python ;;
        *) PYTHON_EXE="$PWD/$venv_python" ;;
    esac
    # shellcheck disable=SC1091  # made just above
    source "$(dirname "$PYTHON_EXE")/activate"
    PIP_CMD="$PYTHON_EXE -m pip"
    export PYTHON_EXE PIP_CMD
    "$PYTHON_EXE" --version
    local -a packages
    read -r -a packages <<< "${NW_VENV_PACKAGES-pip wheel}"
    if [ "${#packages[@]}" -gt 0 ]; then
        _nw_pip install --upgrade "${packages[@]}"
    fi
}

function _nw_base_python {
    # Print the interpreter to make venvs from: PYTHON_EXE; else, with
    # MB_PYTHON_VERSION set, pythonX.Y from PATH (or any_python when its version
    # is X.Y), else any_python.  Fails with one line when X.Y is not found.
    if [ -n "$PYTHON_EXE" ] || [ -z "$MB_PYTHON_VERSION" ]; then
        any_python
        return
    fi
    if command -v "python$MB_PYTHON_VERSION" > /dev/null 2>&1; then
        echo "python$MB_PYTHON_VERSION"
        return
    fi
    local py found
    py=$(any_python) || return 1
    found=$("$py" -c 'import sys; print("{0}.{1}".format(*sys.version_info[:2]))')
    if [ "$found" != "$MB_PYTHON_VERSION" ]; then
        _nw_err "MB_PYTHON_VERSION=$MB_PYTHON_VERSION but there is no python$MB_PYTHON_VERSION on PATH ($py is $found)"
        return 1
    fi
    echo "$py"
}

function _nw_test_env {
    # Fill the array _nw_env with the NAME=VALUE pairs the test wrap receives;
    # the NW_* settings, TEST_LABEL and REPO_DIR (run_tests may read the
    # source's test requirements) only when set.
    _nw_env=(
        "PYTHON_VERSION=$MB_PYTHON_VERSION"
        "MB_PYTHON_VERSION=$MB_PYTHON_VERSION"
        "UNICODE_WIDTH=$UNICODE_WIDTH"
        "CONFIG_PATH=$CONFIG_PATH"
        "WHEEL_SDIR=$WHEEL_SDIR"
        "MANYLINUX_URL=$MANYLINUX_URL"
        "MB_ML_LIBC=$MB_ML_LIBC"
        "TEST_DEPENDS=$TEST_DEPENDS"
    )
    _nw_add_set TEST_LABEL REPO_DIR NW_DEBUG NW_WORK_DIR NW_DEPS_AS_OF
}

function _nw_where {
    # Print where a wrap script runs: "natively in DIR" or "in a container".
    # Depends on: MB_IO_DIR (set by the native callers)
    if [ -n "$MB_IO_DIR" ]; then
        echo "natively in $MB_IO_DIR"
    else
        echo "in a container"
    fi
}

function _nw_add_set { # <name>...
    # Append NAME=VALUE to the array _nw_env for each NAME that is set and not empty.
    local name
    for name in "$@"; do
        if [ -n "${!name}" ]; then _nw_env+=("$name=${!name}"); fi
    done
}

function _nw_native_test() ( # <wrap script>
    # Run the test wrap (docker_test_wrap.sh) natively in $PWD with a fresh venv
    # (removed by a trap) made from the caller's interpreter, as the test
    # container would give; either venv layout (see _nw_venv_python).
    # Depends on: PYTHON_EXE (base interpreter), and what _nw_test_env reads
    wrap=$1
    base_python=${PYTHON_EXE:-$(any_python)} || exit 1
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/nw-test-venv.XXXXXXXX") || exit 1
    trap 'rm -rf -- "$tmp"' EXIT
    python=$(_nw_make_venv install_run "$base_python" "$tmp/venv") || exit 1
    _nw_test_env
    env "${_nw_env[@]}" PYTHON_EXE="$python" PIP_CMD="$python -m pip" \
        MB_IO_DIR="$PWD" bash "$wrap"
)

function retry {
    # Run a command up to 5 times, waiting NW_RETRY_DELAY (1) seconds between tries.
    # Parameters: cmd [args...]; prints "Retry failed [5]: CMD" to stderr at the end
    local attempt
    for attempt in 1 2 3 4 5; do
        if "$@"; then
            return 0
        fi
        if [ "$attempt" -lt 5 ]; then
            sleep "${NW_RETRY_DELAY:-1}"
        fi
    done
    _nw_err "Retry failed [5]: $*"
    return 1
}

function check_python {
    # Fail (stderr, return 1) if PYTHON_EXE is not set.
    if [ -z "$PYTHON_EXE" ]; then
        _nw_err "PYTHON_EXE variable not defined"
        return 1
    fi
}

function check_pip {
    # Fail (stderr, return 1) if PIP_CMD is not set.
    if [ -z "$PIP_CMD" ]; then
        _nw_err "PIP_CMD variable not defined"
        return 1
    fi
}

function get_py_mm {
    # Print X.Y of $PYTHON_EXE.
    check_python || return 1
    "$PYTHON_EXE" -c 'import sys; print("{0}.{1}".format(*sys.version_info[:2]))'
}

function cpython_path { # <version=2.7> [unicode width=$UNICODE_WIDTH]
    # Print the manylinux image path of a CPython: 3.9 -> /opt/python/cp39-cp39,
    # 3.7 -> /opt/python/cp37-cp37m, 2.7 (width 32) -> /opt/python/cp27-cp27mu.
    local py_ver=${1:-2.7}
    local u_width=${2:-$UNICODE_WIDTH}
    local u_suff=u
    if [ "$u_width" == "16" ]; then
        u_suff=""
    elif [ -n "$u_width" ] && [ "$u_width" != "32" ] && [ "$u_width" != "u" ]; then
        _nw_err "Incorrect u_width value $u_width"
        return 1
    fi
    local lex
    lex=$(lex_ver "$py_ver") || return 1
    local no_dots
    no_dots=$(unlex_ver "$lex")
    no_dots=${no_dots%.*}
    no_dots=${no_dots//./}
    local m_suff=""
    if [ "$lex" -lt "$(lex_ver 3.8)" ]; then m_suff=m; fi
    if [ "$lex" -ge "$(lex_ver 3.4)" ]; then u_suff=""; fi
    echo "/opt/python/cp${no_dots}-cp${no_dots}${m_suff}${u_suff}"
}

# Kept for multibuild's API only (Python 2, PyPy, python.org installers,
# bdist_wheel); nothing on the build path calls it.
# shellcheck source=multibuild/compat.sh
source "$MULTIBUILD_DIR/compat.sh"
