"""Bundled manifests for ``kubetrio demo``."""
