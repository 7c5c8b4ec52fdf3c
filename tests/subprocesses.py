"""What tests that run siyu as a real subprocess (serve, import, kill -9) share."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path


def siyu_script() -> str:
    """The `siyu` console script of the running interpreter's environment."""
    found = shutil.which("siyu", path=str(Path(sys.executable).parent)) or shutil.which("siyu")
    assert found, "the siyu console script is not installed"
    return found


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def imported_by(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    import subprocess

    probe = f"import sys\n{code}\nprint(','.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    return out.split(",") if out else []
