"""Fakes shipped in the package: a scripted model and a fake clock (used by tests, demo and bench)."""

from loopbot.testing.clock import FakeClock
from loopbot.testing.scripted import ScriptedModel, load_script

__all__ = ["FakeClock", "ScriptedModel", "load_script"]
