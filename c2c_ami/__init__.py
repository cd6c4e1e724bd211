"""c2c-ami: HTTP click-to-call gateway for Asterisk (AMI Originate via panoramisk)."""

__version__ = "0.1.0"
