"""Test doubles for the gateway's own tests and benchmarks (and for users' tests): never
imported by the running gateway."""
