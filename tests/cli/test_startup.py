"""The command line starts without the heavy libraries: ``siyu --help`` and commands that need
little no longer wait seconds for pandas, SciPy, scikit-learn and Ibis to import."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "scipy", "sklearn", "ibis", "pyarrow.compute", "duckdb")


def test_importing_the_cli_imports_no_heavy_library() -> None:
    probe = f"import sys, siyu.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_registering_the_builtins_does_not_import_scikit_learn() -> None:
    probe = (
        "import sys; from siyu.registry import load_builtins; load_builtins(); "
        "print('sklearn' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"


def test_the_tier_model_help_names_every_model() -> None:
    from siyu.cli.segments import TIER_MODEL_HELP
    from siyu.segments import TIER_MODELS

    for name in TIER_MODELS:
        assert name in TIER_MODEL_HELP
