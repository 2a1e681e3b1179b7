#!/bin/bash
# Host-side Linux steps: before_install, build_wheel, build_index_wheel,
# build_multilinux and install_run.
#
# With a container engine (`docker info` succeeds) the build runs in a manylinux
# image and the tests in a plain-distro image, exactly as multibuild did.
# Without one, the very same wrap scripts run natively in $PWD: the build with
# the caller's interpreter, the tests in a fresh venv.  config.sh is not sourced
# on the host.
set -e

TRAVIS_LINUX_STEPS_DIR=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=multibuild/common_utils.sh
source "$TRAVIS_LINUX_STEPS_DIR/common_utils.sh"

# Allow the Travis Python version as proxy for the multibuild Python version.
MB_PYTHON_VERSION=${MB_PYTHON_VERSION:-$TRAVIS_PYTHON_VERSION}

# Platforms a Linux build can target.
NW_LINUX_PLATS="x86_64 i686 aarch64 ppc64le s390x"

function before_install {
    # Make and activate a virtualenv `venv` in the cwd to work in (_nw_work_venv).
    # Depends on: PYTHON_EXE (optional), NW_VENV_PACKAGES (upgraded into the venv;
    #   default "pip wheel", empty for none)
    # Sets and exports PYTHON_EXE and PIP_CMD.
    _nw_work_venv venv
}

function build_wheel {
    # Build the wheel of REPO_DIR for PLAT into $WHEEL_SDIR (in the container).
    # Parameters: [repo_dir=$REPO_DIR] [plat=${PLAT:-x86_64}]
    local repo_dir=${1:-$REPO_DIR}
    if [ -z "$repo_dir" ]; then
        _nw_err "build_wheel: repo_dir not defined (pass it or set REPO_DIR)"
        return 1
    fi
    local plat=${2:-${PLAT:-x86_64}}
    local cmds
    printf -v cmds 'build_wheel %q' "$repo_dir"
    REPO_DIR=$repo_dir build_multilinux "$plat" "$cmds"
}

function build_index_wheel {
    # Build a wheel of SPEC from the package index for PLAT into $WHEEL_SDIR.
    # Parameters: spec [plat=${PLAT:-x86_64}]
    local project_spec=$1
    if [ -z "$project_spec" ]; then
        _nw_err "build_index_wheel: project spec not defined"
        return 1
    fi
    local plat=${2:-${PLAT:-x86_64}}
    local cmds
    printf -v cmds 'build_index_wheel %q' "$project_spec"
    build_multilinux "$plat" "$cmds"
}

# _NW_ENGINE caches whether a container engine answers (yes/no); probing
# `docker info` once per shell is enough and it can take seconds.
_NW_ENGINE=""

function _nw_container_engine {
    # Succeed when a container engine is usable (`docker info`), cached.
    # Depends on: NW_NO_CONTAINER (1: always native)
    if [ "$NW_NO_CONTAINER" == "1" ]; then
        return 1
    fi
    if [ -z "$_NW_ENGINE" ]; then
        if command -v docker > /dev/null 2>&1 && docker info > /dev/null 2>&1; then
            _NW_ENGINE=yes
        else
            _NW_ENGINE=no
        fi
    fi
    [ "$_NW_ENGINE" == "yes" ]
}

function _nw_check_plat { # <caller> <plat> <native: 1 or empty>
    # Fail with one line if PLAT is unknown, or natively not the host's arch.
    local caller=$1 plat=$2 native=$3
    if [ -z "$plat" ]; then
        _nw_err "$caller: PLAT not defined"
        return 1
    fi
    if [[ " $NW_LINUX_PLATS " != *" $plat "* ]]; then
        _nw_err "$caller: unknown PLAT '$plat' (expected one of: $NW_LINUX_PLATS)"
        return 1
    fi
    if [ -n "$native" ]; then
        local host
        host=$(uname -m)
        if [ "$plat" != "$host" ]; then
            _nw_err "$caller: PLAT=$plat needs a container engine (host is $host)"
            return 1
        fi
    fi
}

function _nw_io_path { # <caller> <script name>
    # Print the container path /io/<MULTIBUILD_DIR relative to $PWD>/<script>.
    local caller=$1 script=$2
    local rel
    rel=$(relpath "$MULTIBUILD_DIR" "$PWD") || return 1
    if [[ $rel == .. || $rel == ../* ]]; then
        _nw_err "$caller: multibuild directory '$MULTIBUILD_DIR' is not under $PWD (mounted as /io)"
        return 1
    fi
    echo "/io/$rel/$script"
}

function _nw_build_env { # <plat> <build commands> <libc> <with MB_ML_VER: 1 or empty>
    # Fill the array _nw_env with the NAME=VALUE pairs the build wrap receives.
    local plat=$1 cmds=$2 libc=$3 with_ml_ver=$4
    _nw_env=(
        "BUILD_COMMANDS=$cmds"
        "PYTHON_VERSION=$MB_PYTHON_VERSION"
        "MB_PYTHON_VERSION=$MB_PYTHON_VERSION"
        "UNICODE_WIDTH=$UNICODE_WIDTH"
        "BUILD_COMMIT=$BUILD_COMMIT"
        "CONFIG_PATH=$CONFIG_PATH"
        "ENV_VARS_PATH=$ENV_VARS_PATH"
        "WHEEL_SDIR=$WHEEL_SDIR"
        "MANYLINUX_URL=$MANYLINUX_URL"
        "BUILD_DEPENDS=$BUILD_DEPENDS"
        "USE_CCACHE=$USE_CCACHE"
        "REPO_DIR=$REPO_DIR"
        "PLAT=$plat"
    )
    if [ -n "$with_ml_ver" ]; then _nw_env+=("MB_ML_VER=$MB_ML_VER"); fi
    _nw_env+=("MB_ML_LIBC=$libc")
    local name
    for name in NW_DEFER_REPAIR NW_REPAIR_LIBRARY_PATH AUDITWHEEL_PLAT NW_DEPS_AS_OF SOURCE_DATE_EPOCH PYTHONHASHSEED; do
        if [ -n "${!name}" ]; then _nw_env+=("$name=${!name}"); fi
    done
}

function _nw_docker_env_args {
    # Turn the array _nw_env into `-e NAME=VALUE` pairs in the array _nw_args.
    _nw_args=()
    local pair
    for pair in "${_nw_env[@]}"; do
        _nw_args+=(-e "$pair")
    done
}

function _nw_image_name { # <template> <plat>
    # Expand $plat / ${plat} / {PLAT} in an image name (no eval).
    local image=$1 plat=$2
    # shellcheck disable=SC2016  # the literal text $plat is what is replaced
    image=${image//'${plat}'/$plat}
    # shellcheck disable=SC2016  # the literal text $plat is what is replaced
    image=${image//'$plat'/$plat}
    image=${image//'{PLAT}'/$plat}
    echo "$image"
}

function build_multilinux {
    # Run build commands in the manylinux container for PLAT, or natively in $PWD
    # when no container engine is available.
    # Parameters: plat build_commands (a bash command string)
    # Depends on: MB_PYTHON_VERSION, UNICODE_WIDTH, BUILD_COMMIT, CONFIG_PATH,
    #   ENV_VARS_PATH, WHEEL_SDIR, MANYLINUX_URL, BUILD_DEPENDS, USE_CCACHE,
    #   REPO_DIR, MB_ML_VER, MB_ML_LIBC, DOCKER_IMAGE, NW_DEFER_REPAIR,
    #   NW_REPAIR_LIBRARY_PATH, AUDITWHEEL_PLAT; natively PYTHON_EXE, PIP_CMD
    local plat=$1 cmds=$2
    if [ -z "$cmds" ]; then
        _nw_err "build_multilinux: build commands not defined"
        return 1
    fi
    local libc=${MB_ML_LIBC:-manylinux}
    local -a _nw_env _nw_args
    if _nw_container_engine; then
        _nw_check_plat build_multilinux "$plat" "" || return 1
        local image wrap
        image=$(_nw_image_name "${DOCKER_IMAGE:-quay.io/pypa/${libc}${MB_ML_VER}_\$plat}" "$plat")
        wrap=$(_nw_io_path build_multilinux docker_build_wrap.sh) || return 1
        _nw_build_env "$plat" "$cmds" "$libc" 1
        _nw_docker_env_args
        retry docker pull "$image"
        docker run --rm "${_nw_args[@]}" \
            -v "$PWD:/io" -v "$HOME:/parent-home" "$image" "$wrap"
    else
        _nw_check_plat build_multilinux "$plat" 1 || return 1
        # Natively MB_ML_VER passes only if the caller chose it (see repair_wheelhouse).
        _nw_build_env "$plat" "$cmds" "$libc" "$NW_ML_VER_GIVEN"
        if [ -n "$PYTHON_EXE" ]; then _nw_env+=("PYTHON_EXE=$PYTHON_EXE"); fi
        if [ -n "$PIP_CMD" ]; then _nw_env+=("PIP_CMD=$PIP_CMD"); fi
        # An exported MB_ML_VER holds common_utils' default here, not a choice.
        local -a drop_ml_ver=()
        if [ -z "$NW_ML_VER_GIVEN" ]; then drop_ml_ver=(-u MB_ML_VER); fi
        env "${drop_ml_ver[@]}" "${_nw_env[@]}" MB_IO_DIR="$PWD" \
            bash "$MULTIBUILD_DIR/docker_build_wrap.sh"
    fi
}

function install_run {
    # Install the wheel from $WHEEL_SDIR and run the project's run_tests, in the
    # test container for PLAT, or natively in a fresh venv without an engine.
    # Parameters: [plat=${PLAT:-x86_64}]
    # Depends on: DOCKER_TEST_IMAGE, MB_PYTHON_VERSION, UNICODE_WIDTH, CONFIG_PATH,
    #   WHEEL_SDIR, MANYLINUX_URL, MB_ML_LIBC, TEST_DEPENDS; natively PYTHON_EXE
    local plat=${1:-${PLAT:-x86_64}}
    local -a _nw_env _nw_args
    if _nw_container_engine; then
        _nw_check_plat install_run "$plat" "" || return 1
        local image wrap
        if [ -n "$DOCKER_TEST_IMAGE" ]; then
            image=$DOCKER_TEST_IMAGE
        elif [ "$MB_ML_LIBC" == "musllinux" ]; then
            image="multibuild/alpine3.20_{PLAT}"
        elif [ "$plat" == "i686" ]; then
            image="matthewbrett/trusty:32"
        else
            image="multibuild/focal_{PLAT}"
        fi
        local image_plat=$plat
        if [ "$plat" == "aarch64" ]; then image_plat=arm64v8; fi
        image=$(_nw_image_name "$image" "$image_plat")
        wrap=$(_nw_io_path install_run docker_test_wrap.sh) || return 1
        _nw_test_env
        _nw_docker_env_args
        docker pull "$image"
        docker run --rm "${_nw_args[@]}" -v "$PWD:/io" "$image" "$wrap"
    else
        _nw_check_plat install_run "$plat" 1 || return 1
        _nw_native_test "$MULTIBUILD_DIR/docker_test_wrap.sh"
    fi
}
