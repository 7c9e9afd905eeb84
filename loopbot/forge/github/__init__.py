"""The GitHub forge: githubkit behind an allow-list of operations. It has no merge operation."""
