"""securepipe: a secure ML pipeline for sensitive records (see ../../README.md)."""

__version__ = "0.1.0"
