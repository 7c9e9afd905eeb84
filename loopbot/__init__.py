"""loopbot: AI coding-agent loops that find work, do it on a branch, get it checked, and never merge."""

__version__ = "0.1.0"
