"""Sandboxes that run the maker's and evaluators' commands."""
