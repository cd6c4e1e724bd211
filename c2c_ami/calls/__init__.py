"""Calls: the state machine, the registry of live calls, the rules (service) and guards."""
