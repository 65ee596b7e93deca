"""Helpers shared by the tests: real databases, real servers, checksums."""
