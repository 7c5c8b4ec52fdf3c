"""The API fixtures (client on the real app, API keys), shared with tests/api."""

from tests.api.conftest import client, make_key, workspace

__all__ = ["client", "make_key", "workspace"]
