"""Whether the compiled core loaded: the one place its ``ImportError`` is caught.

The core exists only in the Linux wheels. Elsewhere (the pure-Python ``py3-none-any``
wheel pip picks on macOS, Windows, musl or another CPU) the import fails, and
``fastspawn`` becomes asyncio's own spawner under fastspawn's names (``_fallback``);
``features().core_error`` keeps the reason. A core that is there but cannot be loaded (a
damaged file, a wheel for another libc) also warns (``RuntimeWarning``) at import: that is
a broken install, not a platform without the core.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Optional

__all__ = ["CORE_ERROR", "CORE_LOADED"]

CORE_ERROR: Optional[str]
try:
    # Not `from . import _core`: its error would be "cannot import name '_core' from
    # partially initialized module" (a circular import, it guesses) instead of the cause.
    importlib.import_module(f"{__package__}._core")
except ImportError as exc:
    CORE_ERROR = str(exc) or repr(exc)
    if not isinstance(exc, ModuleNotFoundError):
        warnings.warn(
            f"fastspawn's compiled core is installed but cannot be loaded ({CORE_ERROR}); "
            "falling back to asyncio's own spawner",
            RuntimeWarning,
            stacklevel=2,
        )
else:
    CORE_ERROR = None

#: The core imported: fastspawn spawns natively (otherwise ``_fallback`` is used).
CORE_LOADED = CORE_ERROR is None
