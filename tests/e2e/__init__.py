"""End-to-end tests: the gateway against the real Asterisk rig with sipp phones and trunks."""
