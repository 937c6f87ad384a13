"""Capture reading: pcap and pcapng records, link layers, IP."""
