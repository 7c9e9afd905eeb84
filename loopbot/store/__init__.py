"""Durable loop state."""
