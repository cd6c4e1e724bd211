"""c2c-ami benchmark suite: ``python -m bench`` (see bench/README.md)."""
