"""The package version, in a module of its own so that every layer can read it without importing
the package root (imports go one way: see tests/test_architecture.py)."""

__version__ = "0.1.0"
