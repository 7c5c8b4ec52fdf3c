"""The one registry: built-ins register through the same extension points as plugins."""

from __future__ import annotations

import pytest

from siyu.errors import NotFound, SiyuError
from siyu.registry import Registry, registry


def test_builtins_are_registered_on_first_use() -> None:
    assert "Order Completed" in registry.event_schemas
    assert {"duckdb", "postgres", "pyspark"} <= set(registry.engines.names())
    assert "phone" in registry.identifier_kinds
    assert {"bgnbd", "paretonbd", "gammagamma"} <= set(registry.model_fitters.names())


def test_unknown_names_list_what_exists() -> None:
    with pytest.raises(NotFound, match="Unknown engine 'oracle'") as caught:
        registry.engines.get("oracle")
    assert "duckdb" in caught.value.hint


def test_a_name_registers_once_unless_replaced() -> None:
    fresh = Registry()
    fresh.channels.register("outbox", "first")
    with pytest.raises(SiyuError, match="already registered"):
        fresh.channels.register("outbox", "second")
    fresh.channels.register("outbox", "second", replace=True)
    assert fresh.channels.get("outbox") == "second"
