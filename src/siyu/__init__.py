"""siyu (私域): an open-source growth engine for cross-border e-commerce and DTC brands.

Each sub-package is a vertical slice with a small public API in its ``__init__``; other slices
import only that API.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
