"""Everything Asterisk-specific: the AMI link, the PBX the call service asks (``Pbx``, its
``calls/pbx_port.py`` spoken over AMI), the translation of AMI events into call transitions,
and reconciliation with Asterisk after a lost link or a restart. Raises only ``AmiError`` and
its kin (the port's ``PbxError`` family)."""
from .actions import Pbx
from .ami import AmiClient, AmiError, AmiLinkDown, AmiRefused, AmiState, AmiTimeout

__all__ = ["AmiClient", "AmiError", "AmiLinkDown", "AmiRefused", "AmiState", "AmiTimeout", "Pbx"]
