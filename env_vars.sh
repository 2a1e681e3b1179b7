# shellcheck shell=bash
# Build environment for 64-bit NumPy wheels: ILP64 OpenBLAS (scipy-openblas64).
# Sourced (multibuild order) after the OS utils and before configure_build.sh;
# select another file with ENV_VARS_PATH (env_vars32.sh for 32-bit targets).

# ilp64 links scipy-openblas64 and passes -Duse-ilp64=true to the build.
export NW_OPENBLAS_INTERFACE=${NW_OPENBLAS_INTERFACE:-ilp64}
# The oldest macOS our wheels support (numpy >= 2.0 needs 10.15 on Intel).
export MACOSX_DEPLOYMENT_TARGET=${MACOSX_DEPLOYMENT_TARGET:-10.15}
export CFLAGS=${CFLAGS:-"-fno-strict-aliasing"}
if [ "$(uname)" != "Darwin" ]; then
    # Drop debug sections at link time; an empty STRIP_FLAGS keeps
    # configure_build.sh's default -Wl,-strip-all out of CXXFLAGS/FFLAGS.
    export LDFLAGS=${LDFLAGS:-"-Wl,--strip-debug"}
    export STRIP_FLAGS=""
fi
