"""Artifact store access: content-addressed, atomically written, verified by digest.

Bottom layer: imports nothing from the roles above it.
"""
