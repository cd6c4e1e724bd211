"""Everything Asterisk-specific: the AMI link, the actions the service needs, and the
translation of AMI events into call transitions. Raises only ``AmiError`` and its kin."""
from .actions import Availability, Channel, DeviceState, Pbx
from .ami import AmiClient, AmiError, AmiLinkDown, AmiRefused, AmiState, AmiTimeout
from .originate import Originate

__all__ = ["AmiClient", "AmiError", "AmiLinkDown", "AmiRefused", "AmiState", "AmiTimeout",
           "Availability", "Channel", "DeviceState", "Originate", "Pbx"]
