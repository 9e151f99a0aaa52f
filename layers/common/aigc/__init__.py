"""Shared library of the AIGC points application (shipped as the CommonLayer)."""
