"""Capture synthesis: reference endpoints driven over a simulated or real TCP stack."""
