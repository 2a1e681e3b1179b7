#!/usr/bin/env bash
# `make stage` (bash scripts/stage.sh [-q | -v] [--version]): upload the wheels this
# run produced to staging, after check_wheel.py passes.  What "this run produced"
# means is $WHEEL_SDIR/manifest.sha256, written by `make test-wheel` (plus any
# manifest-NAME.sha256: other CI jobs' manifests, renamed by each job so they can
# share one directory): exactly their wheels are uploaded, each only if its sha256
# still matches; other wheels in the directory (earlier runs, copies) never are.
#
# Shell for the order of the steps; the decisions are numpy_wheels/stage.py's:
# 1. `stage plan`: every setting checked first (DRY_RUN, STAGE_FORCE, STAGE_STRICT,
#    NIGHTLY: empty, 0 or 1, as `make wheels` takes NIGHTLY; an ANACONDA_TOKEN_FILE
#    that cannot be read stops here), the manifest's wheels, their projects;
# 2. check_wheel.py (a FAIL stops the stage; STAGE_STRICT=1: a warning too);
# 3. the provenance record, signed when a key is given;
# 4. the upload, to one of two targets:
#    - anaconda.org (default), `stage anaconda`: `anaconda upload --skip-existing
#      -u ORG FILE` per file (--force with STAGE_FORCE=1), the token in
#      anaconda-client's environment only (never argv, never output: shown as
#      ********), then the counts (N uploaded, N already there, N failed);
#    - any PyPI-compatible index when STAGE_REPOSITORY_URL is set, with twine
#      through `wheel_uploader.py --files` (a file already there with the same
#      sha256 is skipped, with another sha256 it is an error); the URL goes through
#      the environment too (it may hold user:password@).
#
# Depends on: WHEEL_SDIR (default wheelhouse), ANACONDA_ORG (explicit org wins),
#   BUILD_COMMIT, NIGHTLY and the services' own schedule variables (choose the org
#   when ANACONDA_ORG is unset), ANACONDA_TOKEN or ANACONDA_TOKEN_FILE, else the
#   chosen org's CI secret (NUMPY_STAGING_UPLOAD_TOKEN, NUMPY_NIGHTLY_UPLOAD_TOKEN),
#   STAGE_FORCE, STAGE_STRICT, STAGE_REPOSITORY_URL
#   (credentials: TWINE_USERNAME/TWINE_PASSWORD or .pypirc), DRY_RUN (1: print the
#   commands, secrets masked, upload nothing), NW_PYTHON (the toolkit's python),
#   STAGE_PROJECT (the project(s) every wheel must belong to), STAGE_SIGNING_KEY or
#   STAGE_SIGNING_KEY_FILE (the private key that signs the provenance record),
#   NW_QUIET / NW_VERBOSE (as -q / -v: errors and results only / more detail).
#
# Provenance: the build records in WHEEL_SDIR (build-provenance.intoto.json, and other
# CI jobs' build-provenance-NAME.intoto.json) must name every wheel with its sha256;
# those records are merged into WHEEL_SDIR/provenance/PROJECT-VERSION-provenance-
# DIGEST.intoto.jsonl (kept as a CI artifact), signed when a key is given, and
# uploaded to anaconda.org beside the wheels (as files of the package
# PROJECT-provenance: anaconda.org keeps one package type per package).  A package
# index takes distributions only (pypiserver answers "400 Bad filename"), so with
# STAGE_REPOSITORY_URL the record stays an artifact.
# No token at all, or a CI secret left unexpanded (the literal `$(...)` of Azure on
# fork PRs), is a warning and a skipped upload (exit 0); a token file that was named
# but cannot be read is an error (exit 2). Secrets are never printed, even under
# `bash -x` or SHELLOPTS=xtrace: tracing is off where the shell holds one
# (_nw_stage_quiet). Exit status: 0 done (or skipped), 1 a step failed, 2 a bad
# setting or argument.
set -euo pipefail

_nw_stage_usage="usage: stage.sh [-h] [--version] [-q | -v]   (settings come from the environment: see its header)"

_nw_stage_say() { # <message>: a progress line; none under -q (NW_QUIET)
    if [ -z "${NW_QUIET:-}" ]; then echo "stage: $1"; fi
}

_nw_stage_err() { # <message>: one error line, and the CI's annotation (log.ci_error)
    "$_nw_stage_python" -m numpy_wheels.stage error "$1" || true
}

_nw_stage_quiet() { # <command> <arg>...: run a command that handles a secret, xtrace off
    local status=0 traced=0
    case $- in *x*) traced=1 ;; esac
    { set +x; } 2> /dev/null
    "$@" || status=$?
    if [ "$traced" = 1 ]; then set -x; fi
    return "$status"
}

_nw_stage_twine() { # <wheel>...: upload with twine, each file exactly once (quietly)
    local cmd=("$_nw_stage_python" "$_nw_stage_dir/wheel_uploader.py" --files --no-check)
    if [ "${DRY_RUN:-0}" = "1" ]; then
        cmd+=(--dry-run)
    fi
    TWINE_REPOSITORY_URL="$STAGE_REPOSITORY_URL" "${cmd[@]}" "$@"
}

# Sign the provenance record, when a key is given: ssh-keygen -Y sign (RECORD.sig,
# namespace numpy-wheels-provenance) for an OpenSSH private key, gpg --detach-sign
# (RECORD.asc) for an OpenPGP one.  The key is the text of STAGE_SIGNING_KEY (a CI
# secret) or the file STAGE_SIGNING_KEY_FILE; the text goes to a mode-0600 file in a
# private temporary directory (never argv, never output), removed afterwards; gpg
# works in a GNUPGHOME of its own there, whose agent is stopped.  Unencrypted keys
# only: nothing here can answer a passphrase prompt.
# Depends on: STAGE_SIGNING_KEY, STAGE_SIGNING_KEY_FILE
_nw_stage_sign() { # <record> (call through _nw_stage_quiet)
    local record=$1
    if [ -z "${STAGE_SIGNING_KEY:-}" ] && [ -z "${STAGE_SIGNING_KEY_FILE:-}" ]; then
        return 0
    fi
    local source_name=STAGE_SIGNING_KEY
    if [ -z "${STAGE_SIGNING_KEY:-}" ]; then source_name="STAGE_SIGNING_KEY_FILE ($STAGE_SIGNING_KEY_FILE)"; fi
    if [ "${DRY_RUN:-0}" = "1" ]; then
        echo "stage: would sign $record with the key of $source_name"
        return 0
    fi
    (
        umask 077
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/nw-sign.XXXXXX")
        trap 'GNUPGHOME="$tmp/gnupg" gpgconf --kill all > /dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
        key="$tmp/key"
        if [ -n "${STAGE_SIGNING_KEY:-}" ]; then
            # shellcheck disable=SC2016  # the literal text $( is what we look for
            if [[ "$STAGE_SIGNING_KEY" == *'$('* ]]; then
                _nw_stage_err "STAGE_SIGNING_KEY is an unexpanded CI secret (\$(...)); nothing uploaded"
                exit 1
            fi
            printf '%s\n' "${STAGE_SIGNING_KEY//$'\r'/}" > "$key" # a secret pasted with CRLF
        elif ! tr -d '\r' 2> /dev/null < "$STAGE_SIGNING_KEY_FILE" > "$key"; then
            _nw_stage_err "$source_name cannot be read; nothing uploaded"
            exit 1
        fi
        rm -f "$record.sig" "$record.asc"
        if grep -q -- '-----BEGIN PGP PRIVATE KEY BLOCK-----' "$key"; then
            export GNUPGHOME="$tmp/gnupg"
            mkdir "$GNUPGHOME"
            if ! gpg --batch --quiet --import "$key" 2> /dev/null \
                || ! gpg --batch --quiet --yes --pinentry-mode loopback --passphrase '' --armor \
                    --detach-sign --output "$record.asc" "$record" 2> /dev/null; then
                rm -f "$record.asc"
                _nw_stage_err "gpg could not sign $record with $source_name (a passphrase-protected key?); nothing uploaded"
                exit 1
            fi
            echo "stage: signed $record (gpg: $record.asc)"
        elif grep -q -- 'PRIVATE KEY-----' "$key"; then
            if ! ssh-keygen -y -P '' -f "$key" > /dev/null 2>&1 \
                || ! ssh-keygen -q -Y sign -f "$key" -n numpy-wheels-provenance "$record" < /dev/null 2> /dev/null; then
                rm -f "$record.sig"
                _nw_stage_err "ssh-keygen could not sign $record with $source_name (a passphrase-protected key?); nothing uploaded"
                exit 1
            fi
            echo "stage: signed $record (ssh-keygen -Y sign, namespace numpy-wheels-provenance: $record.sig)"
        else
            _nw_stage_err "$source_name holds neither an OpenSSH nor an OpenPGP private key; nothing uploaded"
            exit 1
        fi
    )
}

_nw_stage_args() { # [-q | -v | --version | -h]...: set _nw_stage_done to an exit status to stop
    local arg
    for arg in "$@"; do
        case $arg in
            -q | --quiet) export NW_QUIET=1 ;;
            -v | --verbose) export NW_VERBOSE=1 ;;
            --version)
                echo "stage.sh (numpy-wheels-toolkit) $("$_nw_stage_python" -c \
                    'from numpy_wheels.log import toolkit_version; print(toolkit_version())')"
                _nw_stage_done=0
                ;;
            -h | --help)
                sed -n '2,/^set -/{/^#/s/^# \{0,1\}//p;}' "${BASH_SOURCE[0]}"
                echo "$_nw_stage_usage"
                _nw_stage_done=0
                ;;
            *)
                printf 'stage.sh: error: unknown argument %q\n%s\n' "$arg" "$_nw_stage_usage" >&2
                _nw_stage_done=2
                ;;
        esac
        if [ -n "$_nw_stage_done" ]; then return; fi
    done
}

_nw_stage_main() {
    local wheel_dir="${WHEEL_SDIR:-wheelhouse}"
    _nw_stage_done=""
    _nw_stage_args "$@"
    if [ -n "$_nw_stage_done" ]; then return "$_nw_stage_done"; fi
    local wheels=() listed wheel status=0
    listed=$("$_nw_stage_python" -m numpy_wheels.stage plan) || status=$?
    if [ "$status" -ne 0 ]; then # its output is then the CI's annotation, if any
        if [ -n "$listed" ]; then printf '%s\n' "$listed"; fi
        return "$status"
    fi
    while IFS= read -r wheel; do wheels+=("$wheel"); done <<< "$listed"
    # The gate is FAIL only; STAGE_STRICT=1 makes warnings stop the upload too.
    # Warnings are printed with the audit's report either way (-q: on failure only).
    local check=("$_nw_stage_dir/check_wheel.py") report
    if [ "${STAGE_STRICT:-0}" = "1" ]; then
        check+=(--strict)
    fi
    if [ -z "${NW_QUIET:-}" ]; then
        echo "+ $_nw_stage_python scripts/check_wheel.py ${check[*]:1}${check[1]:+ }${wheels[*]}"
    fi
    if ! report=$("$_nw_stage_python" "${check[@]}" "${wheels[@]}"); then
        printf '%s\n' "$report"
        _nw_stage_err "check_wheel.py failed; nothing uploaded"
        return 1
    fi
    if [ -z "${NW_QUIET:-}" ]; then printf '%s\n' "$report"; fi
    # The build records must name every wheel with its sha256 (else nothing is
    # uploaded); their merge is the staged record.
    local record provenance=() sig
    if ! record=$("$_nw_stage_python" -m numpy_wheels.upload.provenance stage \
        "$wheel_dir/provenance" "$wheel_dir" "${wheels[@]}"); then
        printf '%s\n' "$record" # the CI's annotation, if any
        return 1
    fi
    if [ -n "$record" ]; then
        _nw_stage_quiet _nw_stage_sign "$record" || return 1
        provenance=(--provenance "$record")
        for sig in "$record.sig" "$record.asc"; do
            if [ -f "$sig" ]; then provenance+=(--provenance "$sig"); fi
        done
        _nw_stage_say "provenance record $record (keep it: CI collects $wheel_dir/provenance/)"
    fi
    if [ -n "${STAGE_REPOSITORY_URL:+set}" ]; then # :+ so that xtrace shows no URL
        if [ -n "$record" ]; then
            _nw_stage_say "the provenance record is not uploaded to the index (an index takes distributions only); it stays in $wheel_dir/provenance/"
        fi
        _nw_stage_quiet _nw_stage_twine "${wheels[@]}"
    else
        "$_nw_stage_python" -m numpy_wheels.stage anaconda \
            ${provenance[@]+"${provenance[@]}"} "${wheels[@]}"
    fi
}

_nw_stage_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/toolkit_python.sh
source "$_nw_stage_dir/toolkit_python.sh"
_nw_stage_python=$(nw_toolkit_python)
export PYTHONPATH="$_nw_stage_dir${PYTHONPATH:+:$PYTHONPATH}"
_nw_stage_main "$@"
