"""Wireshark integration: the Lua dissector's generator and its installer."""
