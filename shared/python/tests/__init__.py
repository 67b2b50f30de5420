"""Tests of the loracast Python client: pure unit tests, and tests against a real trainer and generators (live)."""
