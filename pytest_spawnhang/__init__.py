"""pytest-spawnhang: catch, explain and clean up hangs in multi-process Python programs."""

__version__ = "0.1.0"
