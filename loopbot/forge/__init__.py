"""Forges: where plans are filed and branches are proposed for review (local files, GitHub)."""
