"""deploybench: export vision models, run them in their native runtimes, check parity, measure.

The Python API is ``deploybench.compare``, ``deploybench.bench`` and ``deploybench.export``
(see :mod:`deploybench.api`); importing the package loads no backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["bench", "compare", "export"]

if TYPE_CHECKING:
    from deploybench.api import bench, compare, export


def __getattr__(name: str) -> Any:
    # The API module is imported on first use, so `import deploybench` stays light.
    if name in __all__:
        from deploybench import api

        return getattr(api, name)
    raise AttributeError(f"module 'deploybench' has no attribute {name!r}")
