"""Calls: the state machine, the registry of live calls, the rules (service), guards, and
reconciliation after lost links and restarts."""
