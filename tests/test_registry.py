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


def test_each_builtin_module_registers_into_the_points_it_declares() -> None:
    """A point loads only the modules declared for it, so a module registering elsewhere
    would leave that point without its built-in until something else loaded the module."""
    import importlib

    from siyu.registry import BUILTIN_MODULES

    for name, declared in BUILTIN_MODULES.items():
        fresh = Registry()
        importlib.import_module(name).register(fresh)
        filled = {key for key, point in fresh.points().items() if point._items}
        assert filled == set(declared), name


def test_a_point_loads_only_its_own_builtins() -> None:
    from tests.subprocesses import imported_by

    code = "from siyu.registry import registry\nassert 'phone' in registry.identifier_kinds"
    others = ("siyu.collect.importers", "siyu.predict.btyd", "siyu.segments.lang.functions")
    assert imported_by(code, others) == []
