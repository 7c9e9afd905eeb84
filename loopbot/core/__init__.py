"""The loop's decisions: pure functions over the loop state. No I/O, no clock, no environment."""
