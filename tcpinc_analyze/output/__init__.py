"""Outputs: rich tables, JSON, JSON Lines."""
