"""tcpcrypt (RFC 8548): messages, frames, key schedule and reference endpoints."""
