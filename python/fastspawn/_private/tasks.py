"""asyncio's registry of tasks, read directly: a loop's other tasks, for the spawner.

The spawner asks, per spawn, whether the loop has a pending task other than the current
one (``_spawner``). ``asyncio.all_tasks(loop)`` answers, but on 3.11-3.13 it is Python
code that copies the registry through a ``WeakSet`` iterator (a generator and an
iteration guard) and calls ``futures._get_loop`` per task: 23 k instructions per spawn
on a loop with one task, a tenth of a sequential spawn's parent CPU (callgrind). The same
walk over the registry's own set of weak references costs a few thousand.

The registry by version, as each version's ``asyncio/tasks.py`` defines it (the C
accelerator ``_asyncio`` exports the same objects, which ``tasks.py`` re-imports):

* 3.11: ``_all_tasks``, a ``WeakSet`` of every task;
* 3.12, 3.13: ``_scheduled_tasks`` (``WeakSet``) and ``_eager_tasks`` (a ``set`` of the
  eager tasks still running their first step), which ``all_tasks`` reads eager first;
* 3.14 on: ``all_tasks`` is C (per-thread lists of native tasks), and is used as it is.

Where the names are missing or of another type, or on another version, ``other_tasks``
answers None and the caller asks ``asyncio.all_tasks``.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from typing import Any, Optional

__all__ = ["REGISTRY", "other_tasks"]

# (name of the WeakSet, name of the eager set or None) in asyncio.tasks, by version.
REGISTRY: dict[tuple[int, int], tuple[str, Optional[str]]] = {
    (3, 11): ("_all_tasks", None),
    (3, 12): ("_scheduled_tasks", "_eager_tasks"),
    (3, 13): ("_scheduled_tasks", "_eager_tasks"),
}


def _lookup() -> tuple[Optional[set[weakref.ref[Any]]], Optional[set[Any]]]:
    """The registry's set of weak references (a WeakSet's ``data``, made in its
    ``__init__`` and never rebound) and its eager set, or None."""
    names = REGISTRY.get(sys.version_info[:2])
    if names is None or sys.implementation.name != "cpython":
        return None, None
    weak_name, eager_name = names
    weak = getattr(asyncio.tasks, weak_name, None)
    eager = None if eager_name is None else getattr(asyncio.tasks, eager_name, None)
    refs = getattr(weak, "data", None)
    if not isinstance(weak, weakref.WeakSet) or not isinstance(refs, set):
        return None, None
    if eager_name is not None and not isinstance(eager, set):
        return None, None
    return refs, eager


_REFS, _EAGER = _lookup()


def other_tasks(loop: asyncio.AbstractEventLoop, current: Optional[asyncio.Task[Any]]) -> Optional[list[Any]]:
    """The tasks ``asyncio.all_tasks(loop)`` would give, but for ``current`` (in no
    particular order, perhaps one twice); None where the registry is not known here."""
    registry = _REFS
    if registry is None:
        return None
    # Copies first, as all_tasks does (another thread may add tasks meanwhile); list() of
    # a set is one C call.
    eager = () if _EAGER is None else list(_EAGER)
    refs = list(registry)
    found = []
    try:
        for task in eager:
            if task is not current and task.get_loop() is loop and not task.done():
                found.append(task)
        for ref in refs:
            task = ref()
            if task is not None and task is not current and task.get_loop() is loop and not task.done():
                found.append(task)
    except AttributeError:
        # A task object without get_loop() (all_tasks falls back to its _loop): ask it.
        return None
    return found
