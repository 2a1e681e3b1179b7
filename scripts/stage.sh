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
#   command lines, token masked, upload nothing), NW_PYTHON (the toolkit's python),
#   STAGE_PROJECT (the project(s) every wheel must belong to), STAGE_SIGNING_KEY or
#   STAGE_SIGNING_KEY_FILE (the private key that signs the provenance record).
#
# Provenance: the build records in WHEEL_SDIR (build-provenance.intoto.json, and other
# CI jobs' build-provenance-NAME.intoto.json) must name every wheel with its sha256;
# those records are merged into WHEEL_SDIR/provenance/PROJECT-VERSION-provenance-
# DIGEST.intoto.jsonl (kept as a CI artifact), signed when a key is given, and
# uploaded to anaconda.org beside the wheels (as files of the package
# PROJECT-provenance: anaconda.org keeps one package type per package).  A package
# index takes distributions only (pypiserver answers "400 Bad filename"), so with
# STAGE_REPOSITORY_URL the record stays an artifact.
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
# Depends on: ANACONDA_TOKEN, ANACONDA_TOKEN_FILE, DRY_RUN
_nw_stage_token() {
    local token="${ANACONDA_TOKEN:-}"
    local source_name="ANACONDA_TOKEN" skip="skipping the upload"
    if [ "${DRY_RUN:-0}" = "1" ]; then skip="a real run would skip the upload"; fi
    if [ -z "$token" ] && [ -n "${ANACONDA_TOKEN_FILE:-}" ]; then
        source_name="ANACONDA_TOKEN_FILE ($ANACONDA_TOKEN_FILE)"
        if [ ! -r "$ANACONDA_TOKEN_FILE" ]; then
            _nw_stage_warn "$source_name cannot be read; $skip"
            return 1
        fi
        token=$(tr -d '[:space:]' < "$ANACONDA_TOKEN_FILE")
    fi
    if [ -z "$token" ]; then
        _nw_stage_warn "no anaconda.org token ($source_name is empty or unset); $skip"
        return 1
    fi
    # shellcheck disable=SC2016  # the literal text $( is what we look for
    if [[ "$token" == *'$('* ]]; then
        _nw_stage_warn "$source_name is an unexpanded CI secret (\$(...)); $skip"
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

_nw_stage_show() { # <command> <arg>...: print a command line as run, the token masked
    local shown="+ ANACONDA_API_TOKEN=$NW_TOKEN_MASK" arg
    for arg in "$@"; do
        shown+=" $(printf '%q' "$arg")"
    done
    echo "$shown"
}

# Upload with anaconda-client (call through _nw_stage_quiet): the wheels, then the
# provenance files (record and signature) as generic files of PROJECT-provenance.
_nw_stage_anaconda() { # [<provenance-file>...] -- <wheel>...
    local provenance=()
    while [ "$1" != "--" ]; do
        provenance+=("$1")
        shift
    done
    shift
    local org token mode token_var
    org=$(_nw_stage_org)
    token_var=$(_nw_stage_token_source "$org")
    echo "stage: to $org, with the token of $token_var"
    case "$token_var" in
        NUMPY_*) ANACONDA_TOKEN="${!token_var:-}" ;;
    esac
    token=""
    if ! token=$(_nw_stage_token) && [ "${DRY_RUN:-0}" != "1" ]; then
        return 0
    fi
    mode="--skip-existing"
    if [ "${STAGE_FORCE:-0}" = "1" ]; then
        mode="--force"
    fi
    local wheel_cmd=(anaconda upload "$mode" -u "$org" "$@") files_cmd=()
    if [ "${#provenance[@]}" -gt 0 ]; then
        local base=${1##*/} package version
        package=$(printf '%s' "${base%%-*}" | tr '[:upper:]_.' '[:lower:]--')-provenance
        version=${base#*-}
        version=${version%%-*}
        files_cmd=(anaconda upload "$mode" -u "$org" -t file -p "$package" -v "$version" "${provenance[@]}")
    fi
    _nw_stage_show "${wheel_cmd[@]}"
    if [ "${#files_cmd[@]}" -gt 0 ]; then _nw_stage_show "${files_cmd[@]}"; fi
    if [ "${DRY_RUN:-0}" = "1" ]; then
        return 0
    fi
    if ! command -v anaconda > /dev/null; then
        _nw_stage_err "anaconda-client ('anaconda') is not on PATH; install it: pip install anaconda-client"
        return 1
    fi
    _nw_stage_upload "$org" "$token" "${wheel_cmd[@]}" || return 1
    if [ "${#files_cmd[@]}" -gt 0 ]; then
        _nw_stage_upload "$org" "$token" "${files_cmd[@]}" || return 1
    fi
}

# Run one anaconda-client command with the token in its environment only.
_nw_stage_upload() { # <org> <token> <command> <arg>...
    local org=$1 token=$2 status=0
    shift 2
    # BINSTAR_API_TOKEN, if set, would win over ANACONDA_API_TOKEN in anaconda-client
    (
        unset BINSTAR_API_TOKEN
        # its tqdm bar only where progress.py draws bars: a terminal, no NO_COLOR/CI/-q
        if [ ! -t 2 ] || [ -n "${NO_COLOR:-}${CI:-}${NW_QUIET:-}" ]; then export TQDM_DISABLE=1; fi
        ANACONDA_API_TOKEN="$token" "$@"
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

# Print the projects (one a line, normalised: lower case, `_` for `-` and `.`) the
# wheels must belong to: STAGE_PROJECT (names separated by spaces or commas), else
# numpy for NumPy's own orgs, else nothing (no check).
# Depends on: STAGE_PROJECT, STAGE_REPOSITORY_URL, and what _nw_stage_org reads
_nw_stage_projects() {
    local org names
    if [ -n "${STAGE_PROJECT:-}" ]; then
        names=${STAGE_PROJECT//,/ }
    elif [ -z "${STAGE_REPOSITORY_URL:-}" ]; then
        org=$(_nw_stage_org)
        if [ "$org" = "$NW_STAGING_ORG" ] || [ "$org" = "$NW_NIGHTLY_ORG" ]; then
            names=numpy
        fi
    fi
    local name
    for name in ${names:-}; do
        printf '%s\n' "$name" | tr '[:upper:].-' '[:lower:]__'
    done
}

# Refuse (one line, nothing uploaded) a wheel of a project the target does not expect.
_nw_stage_check_projects() { # <wheel>...
    local expected wheel project where
    expected=$(_nw_stage_projects)
    if [ -z "$expected" ]; then return 0; fi
    where=${STAGE_REPOSITORY_URL:+the index}
    where=${where:-$(_nw_stage_org)}
    for wheel in "$@"; do
        project=${wheel##*/}
        project=$(printf '%s' "${project%%-*}" | tr '[:upper:].-' '[:lower:]__')
        if ! grep -qxF -- "$project" <<< "$expected"; then
            _nw_stage_err "${wheel##*/} is a $project wheel, but $where takes $(paste -sd, - <<< "$expected") only (set STAGE_PROJECT=$project to stage it there); nothing uploaded"
            return 1
        fi
    done
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
            printf '%s\n' "$STAGE_SIGNING_KEY" > "$key"
        elif ! cp "$STAGE_SIGNING_KEY_FILE" "$key" 2> /dev/null; then
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
    local python
    python=$(nw_toolkit_python)
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
    _nw_stage_check_projects "${wheels[@]}" || return 1
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
    # The build records must name every wheel with its sha256 (else nothing is
    # uploaded); their merge is the staged record.
    local record provenance=() sig
    record=$(PYTHONPATH="$_nw_stage_dir${PYTHONPATH:+:$PYTHONPATH}" \
        "$python" -m numpy_wheels.upload.provenance stage "$wheel_dir/provenance" "$wheel_dir" "${wheels[@]}") \
        || return 1
    if [ -n "$record" ]; then
        _nw_stage_quiet _nw_stage_sign "$record" || return 1
        provenance=("$record")
        for sig in "$record.sig" "$record.asc"; do
            if [ -f "$sig" ]; then provenance+=("$sig"); fi
        done
        echo "stage: provenance record $record (keep it: CI collects $wheel_dir/provenance/)"
    fi
    if [ -n "${STAGE_REPOSITORY_URL:+set}" ]; then # :+ so that xtrace shows no URL
        if [ -n "$record" ]; then
            echo "stage: the provenance record is not uploaded to the index (an index takes distributions only); it stays in $wheel_dir/provenance/"
        fi
        _nw_stage_quiet _nw_stage_twine "$python" "${wheels[@]}"
    else
        _nw_stage_quiet _nw_stage_anaconda "${provenance[@]}" -- "${wheels[@]}"
    fi
}

_nw_stage_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/toolkit_python.sh
source "$_nw_stage_dir/toolkit_python.sh"
_nw_stage_main "$@"
