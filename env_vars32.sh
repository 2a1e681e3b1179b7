# shellcheck shell=bash
# Build environment for 32-bit NumPy wheels (i686, win32): LP64 OpenBLAS
# (scipy-openblas32); ILP64 is impossible on a 32-bit target.
# Select with ENV_VARS_PATH=env_vars32.sh.

export NW_OPENBLAS_INTERFACE=lp64
export MACOSX_DEPLOYMENT_TARGET=${MACOSX_DEPLOYMENT_TARGET:-10.15}
# No -msse2: it made 32-bit builds segfault and fail accuracy tests (numpy-wheels#80).
export CFLAGS=${CFLAGS:-"-fno-strict-aliasing"}
if [ "$(uname)" != "Darwin" ]; then
    export LDFLAGS=${LDFLAGS:-"-Wl,--strip-debug"}
    export STRIP_FLAGS=""
fi
