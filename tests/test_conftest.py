"""The suite's own helpers where a mistake would make other tests pass wrongly:
the download cache and the loopback ports."""

from __future__ import annotations

import errno
import socket

import pytest
from conftest import cached_download, closed_port, index_file
from numpy_wheels.files import file_hash

# A small wheel the package index serves (not a local mirror: this machine has one).
SPEC = "cowsay==6.1"


def test_cached_download_is_reverified_against_the_index(tmp_path):
    # GIVEN a wheel fetched into the cache, its digest as the index gives it
    name, _, sha256 = index_file(SPEC)
    first = cached_download(SPEC, tmp_path)
    assert (first.name, file_hash(first)) == (name, sha256)
    # WHEN the cached copy is changed (a stale or corrupted file, a stamp
    # would still say "present")
    first.write_bytes(first.read_bytes() + b"tampered")
    # THEN the next use fetches it again and returns the index's bytes
    again = cached_download(SPEC, tmp_path)
    assert again == first and file_hash(again) == sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no .part left


def test_cached_copy_that_matches_is_not_fetched_again(tmp_path, monkeypatch):
    path = cached_download(SPEC, tmp_path)
    from numpy_wheels import net

    def no_download(*args, **kwargs):
        raise AssertionError("a verified copy was downloaded again")

    monkeypatch.setattr(net, "download", no_download)
    assert cached_download(SPEC, tmp_path) == path


def test_closed_port_refuses_and_stays_taken():
    port = closed_port()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    with socket.socket() as other, pytest.raises(OSError) as exc:
        other.bind(("127.0.0.1", port))
    assert exc.value.errno == errno.EADDRINUSE
