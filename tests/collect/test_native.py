"""The compiled ingestion modules (setup.py, mypyc): built where CI builds, never stale."""

from __future__ import annotations

import importlib.machinery
import os

import pytest

import siyu.collect
from siyu.collect import _native


def test_ci_runs_the_compiled_modules() -> None:
    """`make test` installs the package, which compiles the modules: CI tests what it ships."""
    if os.environ.get("CI", "").lower() != "true" or os.environ.get("SIYU_PURE_PYTHON"):
        pytest.skip("only CI requires the compiled build")
    assert all(_native.compiled().values()), _native.compiled()


def test_a_source_newer_than_its_build_is_imported_instead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not _native.compiled()["siyu.collect.fastpath"]:
        pytest.skip("the modules are not compiled here (pure Python)")
    finder = _native._FreshSourceFinder()
    path = list(siyu.collect.__path__)
    fresh = finder.find_spec("siyu.collect.fastpath", path)
    assert fresh is not None
    assert isinstance(fresh.loader, importlib.machinery.ExtensionFileLoader)
    monkeypatch.setattr(_native, "_SLACK_SECONDS", -1e12)  # as if the source were edited now
    with pytest.warns(RuntimeWarning, match="older than"):
        stale = finder.find_spec("siyu.collect.fastpath", path)
    assert stale is not None
    assert stale.origin is not None
    assert stale.origin.endswith("fastpath.py")
    assert finder.find_spec("siyu.collect.pipeline", path) is None  # not compiled: not ours


def test_one_stale_member_makes_the_whole_group_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled module imports its compiled siblings inside the mypyc group, past the finder:
    with only validate.py edited, importing the compiled rows would run the old validate."""
    if not _native.compiled()["siyu.collect.rows"]:
        pytest.skip("the modules are not compiled here (pure Python)")
    finder = _native._FreshSourceFinder()
    path = list(siyu.collect.__path__)
    monkeypatch.setattr(_native, "_stale", lambda _d, name: name == "siyu.collect.validate")
    with pytest.warns(RuntimeWarning, match="siyu.collect.validate is older"):
        spec = finder.find_spec("siyu.collect.rows", path)
    assert spec is not None
    assert spec.origin is not None
    assert spec.origin.endswith("rows.py")
