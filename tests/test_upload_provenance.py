"""numpy_wheels.upload.provenance: records written by the real provenance code for
real wheels, read back from paths and from a loopback server, signed with keys
made here by the real ssh-keygen and gpg, and the files each record vouches for."""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from numpy_wheels.build import provenance as build_provenance
from numpy_wheels.errors import ConfigurationError
from numpy_wheels.files import file_hash
from numpy_wheels.upload import provenance, provenance_records, provenance_signatures
from staging_server import StagingServer, make_wheel

T0, T1 = datetime(2026, 6, 1, 12, tzinfo=UTC), datetime(2026, 6, 1, 13, tzinfo=UTC)
SDIST = {"kind": "sdist", "file": "tinyproj-1.0.tar.gz", "sha256": "b" * 64}


def build_record(tmp_path: Path, wheels: list[Path], name: str = "a") -> Path:
    """The record `make wheels` writes for ``wheels`` (the real statement and writer)."""
    report = {
        "platform": "x86_64",
        "python": "Python 3.11.7",
        "wheels": [{"name": w.name, "sha256": file_hash(w)} for w in wheels],
    }
    statement = build_provenance.statement(
        report, marker=SDIST, repo_dir=tmp_path, repo_url="", build_python=tmp_path / "none",
        openblas=None, source_date_epoch=1779140400, started=T0, finished=T1,
    )  # fmt: skip
    out = tmp_path / f"job-{name}"
    out.mkdir()
    return build_provenance.write(out, statement)


@pytest.fixture
def wheels(tmp_path) -> list[Path]:
    dest = tmp_path / "built"
    return [
        make_wheel(dest, "tinyproj", "1.0"),
        make_wheel(dest, "tinyproj", "1.0", "cp311-cp311-manylinux_2_28_x86_64"),
    ]


def digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: file_hash(p) for p in paths}


def test_each_file_is_vouched_for_by_the_record_naming_it(tmp_path, wheels):
    # GIVEN one record per CI job
    first, second = build_record(tmp_path, wheels[:1], "a"), build_record(tmp_path, wheels[1:], "b")
    # WHEN both are loaded and the downloaded files checked
    records = provenance_records.load([str(first), str(second)])
    vouched = provenance.vouch(records, digests(wheels))
    # THEN each file maps to its job's record, and nothing is missing
    assert vouched.by_file[wheels[0].name].source == str(first)
    assert vouched.by_file[wheels[1].name].source == str(second)
    assert vouched.by_file[wheels[0].name].builder == build_provenance.LOCAL_BUILDER
    assert vouched.missing == []


def test_a_swapped_file_is_one_line_with_both_digests(tmp_path, wheels):
    record = build_record(tmp_path, wheels)
    built = file_hash(wheels[0])
    make_wheel(wheels[0].parent, "tinyproj", "1.0", payload=b"evil")  # same name, other bytes
    swapped = file_hash(wheels[0])
    with pytest.raises(provenance_records.ProvenanceError) as err:
        provenance.vouch(provenance_records.load([str(record)]), digests(wheels))
    assert str(err.value) == (
        f"{wheels[0].name}: sha256 {swapped} downloaded, but {record} says {built}; "
        "not the file that was built, nothing uploaded"
    )


def test_a_file_no_record_names_is_refused_and_unstaged_subjects_reported(tmp_path, wheels):
    record = build_record(tmp_path, wheels[:1])
    stranger = make_wheel(tmp_path / "other", "tinyproj", "1.0", "cp311-cp311-win_amd64")
    records = provenance_records.load([str(record)])
    with pytest.raises(
        provenance_records.ProvenanceError, match=f"^{stranger.name}: no provenance record"
    ):
        provenance.vouch(records, digests([wheels[0], stranger]))
    # a record naming a wheel that was not staged: reported, not an error
    both = provenance_records.load([str(build_record(tmp_path, wheels, "c"))])
    vouched = provenance.vouch(both, digests(wheels[:1]))
    assert [name for name, _ in vouched.missing] == [wheels[1].name]


def test_records_that_disagree_about_a_file_are_refused(tmp_path, wheels):
    # GIVEN two records naming one file name with two sha256s (two builds of it),
    # the staged file being either one
    rebuilt = make_wheel(tmp_path / "rebuilt", "tinyproj", "1.0", payload=b"other bytes")
    first, second = build_record(tmp_path, wheels[:1], "a"), build_record(tmp_path, [rebuilt], "b")
    for order in ([first, second], [second, first]):
        records = provenance_records.load(map(str, order))
        # THEN neither vouches for it: one line names both records and both digests
        with pytest.raises(provenance_records.ProvenanceError) as err:
            provenance.vouch(records, digests(wheels[:1]))
        assert str(err.value) == (
            f"{wheels[0].name}: {order[0]} says sha256 {records[0].subjects[wheels[0].name]}, "
            f"{order[1]} says {records[1].subjects[wheels[0].name]}; the records disagree, "
            "nothing uploaded"
        )


@pytest.mark.parametrize(
    ("spelt", "old", "new"), [("case", "tinyproj", "TinyProj"), ("version", "-1.0-", "-1.0.0-")]
)
def test_a_record_naming_the_file_spelt_otherwise_is_refused_naming_it(
    tmp_path, wheels, spelt, old, new
):
    path = build_record(tmp_path, wheels[:1])
    path.write_text(path.read_text().replace(old, new))
    records = provenance_records.load([str(path)])
    other = wheels[0].name.replace(old, new)
    with pytest.raises(provenance_records.ProvenanceError) as err:
        provenance.vouch(records, digests(wheels[:1]))
    assert str(err.value) == (
        f"{wheels[0].name}: no provenance record names it; {path} names {other}, spelt "
        "otherwise (a record must name the file exactly), nothing uploaded"
    )


def test_a_records_own_text_reaches_the_terminal_with_escapes_spelt_out(tmp_path, wheels):
    # GIVEN a record whose builder and one unstaged subject hold terminal escapes and a
    # newline (a forged line), the other subject being the staged wheel
    path = build_record(tmp_path, wheels[:1])
    data = json.loads(path.read_text())
    data["predicate"]["runDetails"]["builder"]["id"] = "urn:x\x1b]0;owned\x07"
    forged = "x.whl\nwheel-uploader: all files vouched for\x1b[2J"
    data["subject"].append({"name": forged, "digest": {"sha256": "c" * 64}})
    path.write_text(json.dumps(data))
    # WHEN the summary lines are made
    lines = provenance.summary_lines(
        provenance.vouch(provenance_records.load([str(path)]), digests(wheels[:1]))
    )
    # THEN each is one line with no control character
    assert len(lines) == 2 and all(line.isprintable() for line in lines), lines
    assert "builder urn:x\\x1b]0;owned\\x07" in lines[0]
    assert lines[1].startswith("x.whl\\nwheel-uploader")


def merged(tmp_path: Path, records: list[Path], envelope: bool = False) -> Path:
    """Several records in one JSON Lines file (what `make stage` stages); optionally
    each wrapped in a DSSE envelope, as SLSA generators write them."""
    lines = []
    for path in records:
        statement = json.loads(path.read_text())
        if envelope:
            payload = base64.b64encode(json.dumps(statement).encode()).decode()
            statement = {"payloadType": provenance_records.DSSE_PAYLOAD_TYPE, "payload": payload,
                         "signatures": []}  # fmt: skip
        lines.append(json.dumps(statement, separators=(",", ":")))
    out = tmp_path / "merged.intoto.jsonl"
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.mark.parametrize("envelope", [False, True], ids=["statements", "envelopes"])
def test_a_merged_file_holds_several_statements(tmp_path, wheels, envelope):
    records = [build_record(tmp_path, [w], str(i)) for i, w in enumerate(wheels)]
    loaded = provenance_records.load([str(merged(tmp_path, records, envelope))])
    assert [r.index for r in loaded] == [1, 2]
    vouched = provenance.vouch(loaded, digests(wheels))
    assert vouched.by_file[wheels[1].name].label.endswith("merged.intoto.jsonl#2")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "neither JSON nor JSON Lines"),
        (b'{"_type": "https://in-toto.io/Statement/v0.1"}', "not an in-toto Statement v1"),
        (json.dumps({"_type": provenance_records.STATEMENT_TYPE, "predicateType": "x"}).encode(),
         "predicateType is 'x'"),
        (json.dumps({"_type": provenance_records.STATEMENT_TYPE,
                     "predicateType": provenance_records.PREDICATE_TYPE,
                     "subject": [{"name": "a.whl", "digest": {"sha256": "AB"}}]}).encode(),
         "a subject without a name and a sha256"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b"\n<!DOCTYPE html><html><body>Sign in</body></html>", "an HTML or XML page"),
        (b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n",
         "a signature or key, not a provenance record"),
    ],
    ids=["garbage", "old-statement", "other-predicate", "bad-digest", "binary", "html", "sig"],
)  # fmt: skip
def test_bad_records_are_one_line(tmp_path, content, message):
    path = tmp_path / "bad.intoto.json"
    path.write_bytes(content)
    with pytest.raises(provenance_records.ProvenanceError, match=f"^{path}: .*{message}"):
        provenance_records.load([str(path)])
    with pytest.raises(provenance_records.ProvenanceError, match="cannot read: No such file"):
        provenance_records.load([str(tmp_path / "absent.json")])


# ------------------------------------------------------------------ signatures


def ssh_key(tmp_path: Path, principal: str = "release@numpy-wheels") -> tuple[Path, Path]:
    """(private key, allowed-signers file) made by the real ssh-keygen."""
    key = tmp_path / f"id-{principal.split('@')[0]}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", str(key)],
                   check=True)  # fmt: skip
    allowed = tmp_path / f"allowed-{principal.split('@')[0]}"
    kind, public = Path(f"{key}.pub").read_text().split()[:2]
    allowed.write_text(f"{principal} {kind} {public}\n")
    return key, allowed


def ssh_sign(record: Path, key: Path, namespace: str = provenance_signatures.NAMESPACE) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", namespace,
                    str(record)], check=True, capture_output=True)  # fmt: skip
    return Path(f"{record}.sig")


def test_ssh_signed_record_is_checked(tmp_path, wheels):
    record = build_record(tmp_path, wheels)
    key, allowed = ssh_key(tmp_path)
    ssh_sign(record, key)
    (got,) = provenance_records.load([str(record)], key=allowed)
    assert got.signed_by == "release@numpy-wheels"
    assert "signed by release@numpy-wheels" in got.describe()


def test_ssh_signature_breaks(tmp_path, wheels):
    record = build_record(tmp_path, wheels)
    key, allowed = ssh_key(tmp_path)
    other, _ = ssh_key(tmp_path, "mallory@example")
    # unsigned, with a key given
    with pytest.raises(provenance_records.ProvenanceError, match="no signature beside it"):
        provenance_records.load([str(record)], key=allowed)
    # signed by a key the allowed-signers file does not hold
    ssh_sign(record, other)
    with pytest.raises(provenance_records.ProvenanceError, match="by no key of --provenance-key"):
        provenance_records.load([str(record)], key=allowed)
    # signed for another namespace (a git commit signature reused)
    Path(f"{record}.sig").unlink()
    ssh_sign(record, key, "git")
    with pytest.raises(provenance_records.ProvenanceError, match="bad signature"):
        provenance_records.load([str(record)], key=allowed)
    # the record edited after signing
    Path(f"{record}.sig").unlink()
    ssh_sign(record, key)
    record.write_text(record.read_text().replace("tinyproj", "tinyprox"))
    with pytest.raises(provenance_records.ProvenanceError, match="bad signature"):
        provenance_records.load([str(record)], key=allowed)


def test_a_key_that_cannot_be_read_is_named_before_any_record_is_read(tmp_path, wheels):
    record = build_record(tmp_path, wheels)  # unsigned: the key is the first thing wrong
    with pytest.raises(ConfigurationError, match=r"^--provenance-key \S+/absent: cannot read"):
        provenance_records.load([str(record)], key=tmp_path / "absent")


def test_a_signature_file_that_is_no_signature_is_named(tmp_path, wheels):
    record = build_record(tmp_path, wheels)
    _, allowed = ssh_key(tmp_path)
    Path(f"{record}.sig").write_text("<!DOCTYPE html><html>Not Found</html>")
    message = "the signature beside it is neither an SSH nor an OpenPGP signature"
    with pytest.raises(provenance_records.ProvenanceError, match=message):
        provenance_records.load([str(record)], key=allowed)


@pytest.fixture
def gpg_home(tmp_path_factory) -> tuple[Path, str]:
    """A GnuPG home with a fresh signing key (the real gpg); (home, fingerprint)."""
    if shutil.which("gpg") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "gnupg"], check=True,
                       capture_output=True)  # fmt: skip
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", "Release <r@example.org>",
                    "ed25519", "sign", "never"], check=True, capture_output=True)  # fmt: skip
    listed = subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    fpr = next(ln.split(":")[9] for ln in listed.splitlines() if ln.startswith("fpr:"))
    yield home, fpr
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)


def test_gpg_signed_record_is_checked_against_the_public_key(tmp_path, wheels, gpg_home):
    home, fpr = gpg_home
    gpg = ["gpg", "--batch", "--homedir", str(home)]
    record = build_record(tmp_path, wheels)
    subprocess.run([*gpg, "--armor", "--detach-sign", "--output", f"{record}.asc", str(record)],
                   check=True, capture_output=True)  # fmt: skip
    public = tmp_path / "release.pub.asc"
    subprocess.run([*gpg, "--armor", "--export", "--output", str(public), fpr], check=True)
    (got,) = provenance_records.load([str(record)], key=public)
    assert got.signed_by == fpr
    # an ssh allowed-signers file does not check a GPG signature
    _, allowed = ssh_key(tmp_path)
    with pytest.raises(provenance_records.ProvenanceError, match="signed with gpg, but"):
        provenance_records.load([str(record)], key=allowed)
    record.write_text(record.read_text() + " ")
    with pytest.raises(provenance_records.ProvenanceError, match="bad signature"):
        provenance_records.load([str(record)], key=public)


def test_a_private_key_given_as_the_check_key_is_refused(tmp_path, wheels):
    key, _ = ssh_key(tmp_path)
    record = build_record(tmp_path, wheels)
    ssh_sign(record, key)
    with pytest.raises(ConfigurationError, match="a private key; give the public side"):
        provenance_records.load([str(record)], key=key)


# ---------------------------------------------------------------------- URLs


def test_records_and_signatures_by_url(tmp_path, wheels):
    record = build_record(tmp_path, wheels)
    key, allowed = ssh_key(tmp_path)
    sig = ssh_sign(record, key)
    served = {
        "tinyproj-1.0-provenance.intoto.json": record,
        "tinyproj-1.0-provenance.intoto.json.sig": sig,
    }
    with StagingServer(served) as server:
        url = f"{server.listing_url}tinyproj-1.0-provenance.intoto.json"
        with pytest.raises(ConfigurationError, match="refusing http://"):
            provenance_records.load([url])
        (got,) = provenance_records.load([url], key=allowed, allow_insecure=True)
        assert got.source == url and got.signed_by == "release@numpy-wheels"
        assert provenance.vouch([got], digests(wheels)).by_file.keys() == set(digests(wheels))
        with pytest.raises(provenance_records.ProvenanceError, match="HTTP 404"):
            provenance_records.load([f"{server.listing_url}absent.json"], allow_insecure=True)
        # without a key no signature is asked for: a server refusing it changes nothing
        server.faults["tinyproj-1.0-provenance.intoto.json.sig"] = ["403"] * 5
        before = len(server.requests)
        (got,) = provenance_records.load([url], allow_insecure=True)
        assert [r[1] for r in server.requests[before:]] == [urlsplit(url).path]


def test_an_unsigned_record_from_a_server_is_warned_about(tmp_path, wheels, capsys):
    record = build_record(tmp_path, wheels)
    with StagingServer({"r.intoto.json": record}) as server:
        url = f"{server.listing_url}r.intoto.json"
        opts = argparse.Namespace(provenance=[url], provenance_key=None, timeout=30.0,
                                  allow_insecure=True)  # fmt: skip
        assert len(provenance.records_for(opts)) == 1
        assert f"warning: {url}: an unsigned record on a server is no better than" in (
            capsys.readouterr().err
        )
        provenance.records_for(argparse.Namespace(**{**vars(opts), "provenance": [str(record)]}))
        assert "warning" not in capsys.readouterr().err  # a local file (the CI artifact)
