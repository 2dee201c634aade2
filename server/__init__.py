"""Murmur server: a self-hosted backend for AI glasses (see shared/DESIGN.md)."""

__version__ = "0.1.0"
