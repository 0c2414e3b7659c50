"""Fixtures of the contract and dependency-direction tests."""
