"""The maker's view of the repository: a repo map and wiki excerpts, fitted to a token budget."""
