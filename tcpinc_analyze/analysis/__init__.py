"""Per-connection analysis: the flow table, ENO outcome, tcpcrypt framing, reports."""
