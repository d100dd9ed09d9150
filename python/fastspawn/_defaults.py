"""The defaults the native API and the core-less fallback (``_fallback``) share; this
module imports nothing, so both can use it."""

__all__ = ["DEFAULT_GRACE", "DEFAULT_LIMIT"]

#: Seconds between SIGTERM and SIGKILL when a process tree is ended (``async with``,
#: ``aclose``, ``run_process``), as trio's run_process, whose default cancellation sends
#: SIGTERM and SIGKILL 5 s later.
DEFAULT_GRACE = 5.0

#: asyncio.streams._DEFAULT_LIMIT, the default ``limit`` of every StreamReader.
DEFAULT_LIMIT = 2**16
