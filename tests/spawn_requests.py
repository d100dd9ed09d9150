"""``NativeSpawn`` requests for the tests that drive ``_core.spawn`` directly
(test_core_contract, test_hostile_core): every field at its "not asked for" value."""

from __future__ import annotations

import os
from typing import Any

from fastspawn._options import NativeSpawn


def native_request(**fields: Any) -> NativeSpawn:
    """A request to run ``true`` with no option, ``fields`` replaced."""
    base = NativeSpawn(
        program=b"true",
        argv=[b"true"],
        env=None,
        exec_path=os.fsencode(os.pathsep.join(os.get_exec_path())),
        cwd=None,
        stdin=None,
        stdout=None,
        stderr=None,
        close_fds=True,
        pass_fds=[],
        start_new_session=False,
        process_group=None,
        restore_signals=True,
        pipe_size=None,
        program_name="true",
        cwd_name=None,
        umask=None,
        groups=None,
        gid=None,
        uid=None,
        rlimits=None,
        pdeathsig=None,
        subreaper=False,
    )
    return base._replace(**fields)
