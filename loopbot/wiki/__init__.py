"""The committed wiki folder: its schema, lint, and the documentation loop that keeps it current."""
