"""Calls: the state machine and its vocabulary, the registry of live calls, the rules
(service), guards, the cluster's ownership of calls, and the PBX as the service sees it
(``pbx_port.py``, which ``pbx/`` implements)."""
