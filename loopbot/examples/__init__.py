"""Bundled examples: repositories, goals and model scripts for the demo, tests and benchmarks."""

from pathlib import Path

EXAMPLES = Path(__file__).parent
KVSTORE = EXAMPLES / "kvstore"
