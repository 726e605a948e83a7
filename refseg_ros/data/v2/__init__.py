"""Tabletop v2 generator (see docs/data-format.md)."""
