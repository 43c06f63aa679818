"""The local endpoint the main job starts is stopped, and its unpacked copy removed, on failure."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from artifacts.pack import pack_directory
from artifacts.server import serve_in_background
from tests.server_fixtures import build_toy_artifact


class _StepFailedError(Exception):
    pass


def _accepts_connections(base_url: str) -> bool:
    address = urlparse(base_url)
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((address.hostname, address.port)) == 0


def test_a_failing_step_stops_the_endpoint_and_removes_the_unpacked_artifact(tmp_path, monkeypatch):
    tarball = pack_directory(build_toy_artifact(tmp_path / "toy"), tmp_path / "model.tar.gz")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen = {}

    with (
        pytest.raises(_StepFailedError),
        serve_in_background(tarball, "vae") as base_url,
    ):
        seen["url"] = base_url
        seen["ping"] = httpx.get(f"{base_url}/ping", timeout=10).status_code
        seen["unpacked"] = sorted(p.name for p in scratch.iterdir())
        raise _StepFailedError("scoring failed")

    assert seen["ping"] == 200
    assert len(seen["unpacked"]) == 1  # the tarball was unpacked under the scratch folder
    assert not _accepts_connections(seen["url"])
    assert list(Path(scratch).iterdir()) == []
