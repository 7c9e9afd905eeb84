"""The maker's tools over a workspace."""
