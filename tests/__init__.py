"""c2c-ami tests: unit tests mirror c2c_ami/ modules; rig/ and e2e/ need the real Asterisk rig."""
