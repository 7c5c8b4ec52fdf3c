"""The command line starts without the heavy libraries: ``siyu --help`` and commands that need
little no longer wait seconds for pandas, SciPy, scikit-learn and Ibis to import."""

from __future__ import annotations

from tests.subprocesses import imported_by

HEAVY = ("pandas", "scipy", "sklearn", "ibis", "pyarrow.compute", "duckdb")


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert imported_by("import siyu.cli", HEAVY) == []


def test_registering_the_builtins_does_not_import_scikit_learn() -> None:
    code = "from siyu.registry import load_builtins; load_builtins()"
    assert imported_by(code, ("sklearn",)) == []


def test_the_tier_model_help_names_every_model() -> None:
    from siyu.cli.segments import TIER_MODEL_HELP
    from siyu.segments import TIER_MODELS

    for name in TIER_MODELS:
        assert name in TIER_MODEL_HELP


def test_the_table_definitions_load_without_ibis_scipy_or_pandas() -> None:
    """``siyu status`` and the migrations load every slice's tables; a slice's package no
    longer imports its whole API (``siyu.lazy``), so that does not import the analytics."""
    code = "from siyu.store.catalog import load_all_tables; load_all_tables()"
    assert imported_by(code, ("pandas", "scipy", "sklearn", "ibis")) == []


def test_lazy_package_names_are_the_defining_modules_names() -> None:
    import importlib

    import siyu.collect
    import siyu.predict
    import siyu.segments

    for package in (siyu.collect, siyu.predict, siyu.segments):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    from siyu.segments import RfmConfig

    assert RfmConfig is importlib.import_module("siyu.segments.rfm").RfmConfig
