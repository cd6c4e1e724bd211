"""pytest fixtures for the real Asterisk rig; tests/conftest.py imports them.

`rig` (session): one instance for the whole test session, installed if needed, always
brought down at the end.  If it cannot start, every test that uses it ERRORS (never skips):
a silently skipped rig would hide a broken test environment.
`rig_factory` (function): start extra instances (`rig_factory(offset=N)`); all are brought
down when the test ends, pass or fail.
"""

import pytest

from .errors import RigError
from .install import install
from .instance import Rig
from .plan import DRIVERS

__all__ = ["driver_rig", "rig", "rig_chan_sip", "rig_factory", "rig_pjsip"]


@pytest.fixture(scope="session")
def rig_pjsip():
    """A running Rig (Asterisk 22, PJSIP): .ami (host/port/username/secret), .sip_port, trace readers."""
    runtime = install(verbose=False)
    instance = Rig.up(runtime=runtime)
    try:
        yield instance
    finally:
        instance.down()


@pytest.fixture(scope="session")
def rig(rig_pjsip):
    """The session's rig (PJSIP).  A test module runs on both drivers by overriding it:
    ``@pytest.fixture`` ``def rig(driver_rig): return driver_rig``."""
    return rig_pjsip


@pytest.fixture(scope="session")
def rig_chan_sip():
    """A running Rig on Asterisk 16 with chan_sip: the same phones, trunks and dialplan."""
    runtime = install(verbose=False)
    instance = Rig.up(runtime=runtime, driver="chan_sip")
    try:
        yield instance
    finally:
        instance.down()


@pytest.fixture(scope="session", params=list(DRIVERS))
def driver_rig(request):
    """The session's rig of each channel driver in turn (a test using it runs once per driver)."""
    return request.getfixturevalue("rig_pjsip" if request.param == "pjsip" else "rig_chan_sip")


@pytest.fixture
def rig_factory(rig_pjsip):
    """Callable (offset=None, driver="pjsip", **options) -> another running Rig (options: a
    broken PBX, see Rig.up); all of them are downed after the test."""
    started = []

    def start(offset=None, driver="pjsip", **options):
        instance = Rig.up(offset, runtime=rig_pjsip.runtime, driver=driver, **options)
        started.append(instance)
        return instance
    try:
        yield start
    finally:
        errors = []
        for instance in started:
            try:
                instance.down()
            except RigError as e:
                errors.append(str(e))
        if errors:
            raise RigError("; ".join(errors))
