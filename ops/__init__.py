"""Operator commands for a deployed (or the local) stack."""
