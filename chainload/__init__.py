"""chainload: Unix chain-loading tools that run a whole chain in one process."""

__version__ = "0.1.0"
