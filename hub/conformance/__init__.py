"""Conformance runs: validate files of every format the hub knows, report as text, JSON or JUnit."""
