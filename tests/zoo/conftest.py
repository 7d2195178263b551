"""Zoo test fixtures: the local HTTP server and a private PPDET_HOME for every test."""

import pytest

from tests.zoo.http_server import http_server  # noqa: F401  (the fixture)


@pytest.fixture(autouse=True)
def ppdet_home(tmp_path, monkeypatch):
    """``PPDET_HOME`` set to a fresh folder (never the user's cache), online mode."""
    home = tmp_path / "ppdet_home"
    monkeypatch.setenv("PPDET_HOME", str(home))
    monkeypatch.delenv("PPDET_OFFLINE", raising=False)
    return str(home)
