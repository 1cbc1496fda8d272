"""Keep the garbage collector's full collections short by freezing long-lived objects.

Why: CPython's cyclic collector walks every tracked object at each full (generation 2)
collection. A server holds hundreds of thousands of them that live as long as it does (the
modules of FastAPI, pydantic, SQLAlchemy, numpy, scikit-learn...), so each full collection
stopped every request for 40-70 ms on a 2-core machine: the rare single requests of ~100 ms
in the load benchmark. :func:`gc.freeze` moves the objects alive now to a permanent
generation that collections skip (reference counting still frees them as usual).

When: once the server has started (its experiments replayed), and again whenever modules
were imported since (a teacher's modules load with its first experiment). A freeze is O(1),
and checking whether modules were imported is a length comparison, so the lease sweeper does
it every second. Cyclic garbage that exists at the moment of a freeze is kept for good, so
freezes are rare (one per batch of imports) and the first one follows a full collection.
"""

from __future__ import annotations

import gc
import logging
import sys

log = logging.getLogger(__name__)


class ModuleFreezer:
    """Freezes the collector's tracked objects after start-up and after new imports."""

    def __init__(self) -> None:
        self._modules = -1  # sys.modules' size at the last freeze

    def after_startup(self) -> None:
        """Collect once, then freeze everything alive (call when the server is ready)."""
        gc.collect()
        self._freeze()

    def after_imports(self) -> bool:
        """Freeze if modules were imported since the last freeze; whether it froze."""
        if len(sys.modules) == self._modules:
            return False
        self._freeze()
        return True

    def _freeze(self) -> None:
        gc.freeze()
        self._modules = len(sys.modules)
        log.debug("froze %d objects (%d modules)", gc.get_freeze_count(), self._modules)
