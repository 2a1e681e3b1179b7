#!/usr/bin/env bash
# `make stage`: upload the wheels this run produced to staging, after check_wheel.py
# passes.  What "this run produced" means is $WHEEL_SDIR/manifest.sha256, written
# by `make test-wheel` (plus any manifest-NAME.sha256: other CI jobs' manifests,
# renamed by each job so they can share one directory): exactly their wheels are
# uploaded, each only if its sha256 still matches; other wheels in the directory
# (earlier runs, copies) never are.
#
# Two targets:
# - anaconda.org (default), with anaconda-client, the token in the environment
#   variable anaconda-client reads (never on a command line, where `ps` shows it
#   to every user):
#     anaconda upload --skip-existing -u $ANACONDA_ORG FILES...
#   (--force instead of --skip-existing with STAGE_FORCE=1);
# - any PyPI-compatible index when STAGE_REPOSITORY_URL is set, with twine through
#   `wheel_uploader.py --files` (same exactly-once logic as wheel-uploader: a file
#   already there with the same sha256 is skipped, with another sha256 it is an error);
#   the URL goes through the environment too (it may hold user:password@).
#
# Depends on: WHEEL_SDIR (default wheelhouse), ANACONDA_ORG (explicit org wins),
#   BUILD_COMMIT, NIGHTLY and the services' own schedule variables (choose the org
#   when ANACONDA_ORG is unset), ANACONDA_TOKEN or ANACONDA_TOKEN_FILE, else the
#   chosen org's CI secret (NUMPY_STAGING_UPLOAD_TOKEN, NUMPY_NIGHTLY_UPLOAD_TOKEN),
#   STAGE_FORCE, STAGE_REPOSITORY_URL
#   (credentials: TWINE_USERNAME/TWINE_PASSWORD or .pypirc), DRY_RUN (1: print the
#   command lines, token masked, upload nothing), NW_PYTHON (the toolkit's python).
# A missing token, or a CI secret left unexpanded (the literal `$(...)` of Azure on
# fork PRs), is a warning and a skipped upload (exit 0). The token is never printed,
# even under `bash -x` or SHELLOPTS=xtrace: tracing is off in every function that
# holds a secret (_nw_stage_quiet) and restored after.
set -euo pipefail

NW_STAGING_ORG="${NW_STAGING_ORG:-multibuild-wheels-staging}"
NW_NIGHTLY_ORG="${NW_NIGHTLY_ORG:-scientific-python-nightly-wheels}"
NW_TOKEN_MASK='********'

_nw_stage_err() { # <message>: print an error line to stderr
    echo "stage: error: $1" >&2
}

_nw_stage_warn() { # <message>: print a warning line to stderr
    echo "stage: warning: $1" >&2
}

_nw_stage_is_release() { # <commit>: 0 if a version tag or a commit hash, 1 for a branch
    local commit=$1
    [[ "$commit" =~ ^v?[0-9]+(\.[0-9]+)+((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?$ ]] \
        || [[ "$commit" =~ ^[0-9a-f]{7,40}$ ]]
}

# 0 when this is a scheduled (nightly) run: NIGHTLY=1, or the CI service says so.
# Depends on: NIGHTLY, BUILD_REASON (Azure), GITHUB_EVENT_NAME, TRAVIS_EVENT_TYPE,
#   APPVEYOR_SCHEDULED_BUILD
_nw_stage_scheduled() {
    [ "${NIGHTLY:-0}" = "1" ] || [ "${BUILD_REASON:-}" = "Schedule" ] \
        || [ "${GITHUB_EVENT_NAME:-}" = "schedule" ] || [ "${TRAVIS_EVENT_TYPE:-}" = "cron" ] \
        || [ "${APPVEYOR_SCHEDULED_BUILD:-}" = "True" ]
}

# Print the anaconda.org organisation to upload to.  Every CI file runs plain
# `make stage`: this is the one place where the org (and so its token) is chosen.
# Depends on: ANACONDA_ORG, BUILD_COMMIT, and what _nw_stage_scheduled reads
_nw_stage_org() {
    if [ -n "${ANACONDA_ORG:-}" ]; then
        echo "$ANACONDA_ORG"
    elif _nw_stage_scheduled; then
        echo "$NW_NIGHTLY_ORG"
    elif [ -n "${BUILD_COMMIT:-}" ] && ! _nw_stage_is_release "$BUILD_COMMIT"; then
        echo "$NW_NIGHTLY_ORG"
    else
        echo "$NW_STAGING_ORG"
    fi
}

# Print the name of the variable that holds the token for org <org>: the caller's
# ANACONDA_TOKEN (or ANACONDA_TOKEN_FILE) when given, else that org's CI secret.
# One org's secret never stands in for the other's.
_nw_stage_token_source() { # <org>
    if [ -n "${ANACONDA_TOKEN:-}" ]; then
        echo ANACONDA_TOKEN
    elif [ -n "${ANACONDA_TOKEN_FILE:-}" ]; then
        echo ANACONDA_TOKEN_FILE
    elif [ "$1" = "$NW_STAGING_ORG" ]; then
        echo NUMPY_STAGING_UPLOAD_TOKEN
    elif [ "$1" = "$NW_NIGHTLY_ORG" ]; then
        echo NUMPY_NIGHTLY_UPLOAD_TOKEN
    else
        echo ANACONDA_TOKEN
    fi
}

# Print the anaconda.org token; return 1 (after a warning) when there is none.
# Depends on: ANACONDA_TOKEN, ANACONDA_TOKEN_FILE
_nw_stage_token() {
    local token="${ANACONDA_TOKEN:-}"
    local source_name="ANACONDA_TOKEN"
    if [ -z "$token" ] && [ -n "${ANACONDA_TOKEN_FILE:-}" ]; then
        source_name="ANACONDA_TOKEN_FILE ($ANACONDA_TOKEN_FILE)"
        if [ ! -r "$ANACONDA_TOKEN_FILE" ]; then
            _nw_stage_warn "$source_name cannot be read; skipping the upload"
            return 1
        fi
        token=$(tr -d '[:space:]' < "$ANACONDA_TOKEN_FILE")
    fi
    if [ -z "$token" ]; then
        _nw_stage_warn "no anaconda.org token ($source_name is empty or unset); skipping the upload"
        return 1
    fi
    # shellcheck disable=SC2016  # the literal text $( is what we look for
    if [[ "$token" == *'$('* ]]; then
        _nw_stage_warn "$source_name is an unexpanded CI secret (\$(...)); skipping the upload"
        return 1
    fi
    printf '%s\n' "$token"
}

_nw_stage_quiet() { # <command> <arg>...: run a command that handles a secret, xtrace off
    local status=0 traced=0
    case $- in *x*) traced=1 ;; esac
    { set +x; } 2> /dev/null
    "$@" || status=$?
    if [ "$traced" = 1 ]; then set -x; fi
    return "$status"
}

_nw_stage_anaconda() { # <wheel>...: upload with anaconda-client (call through _nw_stage_quiet)
    local org token mode token_var
    org=$(_nw_stage_org)
    token_var=$(_nw_stage_token_source "$org")
    echo "stage: to $org, with the token of $token_var"
    case "$token_var" in
        NUMPY_*) ANACONDA_TOKEN="${!token_var:-}" ;;
    esac
    if ! token=$(_nw_stage_token); then
        return 0
    fi
    mode="--skip-existing"
    if [ "${STAGE_FORCE:-0}" = "1" ]; then
        mode="--force"
    fi
    local cmd=(anaconda upload "$mode" -u "$org" "$@")
    local shown="+ ANACONDA_API_TOKEN=$NW_TOKEN_MASK" arg
    for arg in "${cmd[@]}"; do
        shown+=" $(printf '%q' "$arg")"
    done
    echo "$shown"
    if [ "${DRY_RUN:-0}" = "1" ]; then
        return 0
    fi
    if ! command -v anaconda > /dev/null; then
        _nw_stage_err "anaconda-client ('anaconda') is not on PATH; install it: pip install anaconda-client"
        return 1
    fi
    local status=0
    # BINSTAR_API_TOKEN, if set, would win over ANACONDA_API_TOKEN in anaconda-client
    (
        unset BINSTAR_API_TOKEN
        ANACONDA_API_TOKEN="$token" "${cmd[@]}"
    ) || status=$?
    if [ "$status" -ne 0 ]; then
        _nw_stage_err "anaconda upload to $org failed (exit $status); its message is above"
        return 1
    fi
}

_nw_stage_twine() { # <python> <wheel>...: upload with twine, each file exactly once (quietly)
    local python=$1
    shift
    local cmd=("$python" "$_nw_stage_dir/wheel_uploader.py" --files --no-check)
    if [ "${DRY_RUN:-0}" = "1" ]; then
        cmd+=(--dry-run)
    fi
    TWINE_REPOSITORY_URL="$STAGE_REPOSITORY_URL" "${cmd[@]}" "$@"
}

_nw_stage_sha256() { # <file>: print its sha256
    local line
    if command -v sha256sum > /dev/null; then
        line=$(sha256sum "$1")
    else
        line=$(shasum -a 256 "$1")
    fi
    echo "${line%% *}"
}

# Print the wheels a manifest lists, one a line, each checked against its sha256.
_nw_stage_manifest() { # <wheel_dir> <manifest>
    local dir=$1 manifest=$2 sum name got
    while read -r sum name; do
        name=${name#\*}
        case $name in
            */* | .* | '' | *[![:print:]]*)
                _nw_stage_err "$manifest: unexpected line; nothing uploaded"
                return 1
                ;;
        esac
        if [ ! -f "$dir/$name" ]; then
            _nw_stage_err "$dir/$name is in $manifest but missing; nothing uploaded"
            return 1
        fi
        got=$(_nw_stage_sha256 "$dir/$name")
        if [ "$got" != "$sum" ]; then
            _nw_stage_err "$dir/$name changed since make test-wheel listed it (sha256 $got, not $sum); nothing uploaded"
            return 1
        fi
        echo "$dir/$name"
    done < "$manifest"
}

_nw_stage_main() {
    local wheel_dir="${WHEEL_SDIR:-wheelhouse}"
    local python="${NW_PYTHON:-}"
    if [ -z "$python" ]; then
        python="$_nw_stage_dir/../.venv/bin/python"
        if [ ! -x "$python" ]; then
            python=python3
        fi
    fi
    local wheels=() listed wheel
    # manifest.sha256 is this machine's last run; manifest-NAME.sha256 are those of
    # other jobs gathered into one directory by CI (each renamed by its job).
    local manifests=() manifest
    for manifest in "$wheel_dir"/manifest.sha256 "$wheel_dir"/manifest-*.sha256; do
        if [ -f "$manifest" ]; then manifests+=("$manifest"); fi
    done
    if [ "${#manifests[@]}" -eq 0 ]; then
        if [ -n "$(find "$wheel_dir" -maxdepth 1 -name '*.whl' -type f 2> /dev/null)" ]; then
            _nw_stage_err "no manifest.sha256 in $wheel_dir/: make stage uploads only the wheels make test-wheel (make wheels) produced; run it first"
        else
            _nw_stage_err "no wheels in $wheel_dir/ to stage (set WHEEL_SDIR?)"
        fi
        return 1
    fi
    for manifest in "${manifests[@]}"; do
        listed=$(_nw_stage_manifest "$wheel_dir" "$manifest")
        while IFS= read -r wheel; do
            case " ${wheels[*]-} " in
                *" $wheel "*) ;; # listed by two jobs (a pure wheel): once
                *) if [ -n "$wheel" ]; then wheels+=("$wheel"); fi ;;
            esac
        done <<< "$listed"
    done
    if [ "${#wheels[@]}" -eq 0 ]; then
        _nw_stage_err "$wheel_dir/manifest.sha256 lists no wheels (the last run produced none); nothing to stage"
        return 1
    fi
    # The gate is FAIL only; STAGE_STRICT=1 makes warnings stop the upload too.
    # Warnings are printed with the audit's report either way.
    local check=("$_nw_stage_dir/check_wheel.py")
    if [ "${STAGE_STRICT:-0}" = "1" ]; then
        check+=(--strict)
    fi
    echo "+ $python scripts/check_wheel.py ${check[*]:1}${check[1]:+ }${wheels[*]}"
    if ! "$python" "${check[@]}" "${wheels[@]}"; then
        _nw_stage_err "check_wheel.py failed; nothing uploaded"
        return 1
    fi
    if [ -n "${STAGE_REPOSITORY_URL:+set}" ]; then # :+ so that xtrace shows no URL
        _nw_stage_quiet _nw_stage_twine "$python" "${wheels[@]}"
    else
        _nw_stage_quiet _nw_stage_anaconda "${wheels[@]}"
    fi
}

_nw_stage_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_nw_stage_main "$@"
