"""The rig of each channel driver in turn, for a test module to run on both: import it as
``from .drivers import rig_on_each_driver  # noqa: F401`` and every test of the module that
uses ``rig`` (or the gateway fixtures built on it) runs on Asterisk 22/PJSIP and on Asterisk
16/chan_sip (test ids end in ``[pjsip]`` / ``[chan_sip]``)."""
import pytest


@pytest.fixture(name="rig")
def rig_on_each_driver(driver_rig):
    """Every test here runs on both channel drivers: Asterisk 22/PJSIP and Asterisk 16/chan_sip."""
    return driver_rig
