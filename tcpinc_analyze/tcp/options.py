"""A strict, bounds-checked TCP option walker.

dpkt's ``parse_opts`` keeps going past end-of-options, appends None on a bad length and
does not check bounds; an analyzer must instead say exactly which byte is wrong.
"""

from __future__ import annotations

from ..findings import Finding, Severity

OPT_EOL = 0
OPT_NOP = 1

OPTION_NAMES = {
    2: "MSS", 3: "window scale", 4: "SACK permitted", 5: "SACK", 8: "timestamps",
    19: "MD5 signature", 29: "TCP-AO", 30: "MPTCP", 34: "TCP Fast Open cookie",
    69: "ENO", 70: "tcpcrypt MAC (legacy)", 253: "experimental (RFC 6994)",
    254: "experimental (RFC 6994)",
}


def walk_options(options: bytes
                 ) -> tuple[list[tuple[int, int, bytes]], list[Finding], int | None]:
    """Split option bytes into (kind, offset, data) where data excludes kind and length.

    Offsets are relative to the first option byte. Parsing stops at end-of-options or
    at the first malformed option (the rest cannot be delimited); its kind is returned
    as the third value so a malformed ENO option can fail ENO for the connection.
    """
    out: list[tuple[int, int, bytes]] = []
    findings: list[Finding] = []
    bad_kind: int | None = None
    pos = 0
    n = len(options)
    while pos < n:
        kind = options[pos]
        if kind == OPT_EOL:
            if any(options[pos + 1:]):
                findings.append(Finding(Severity.NOTE, "tcp-option-padding",
                                        "non-zero bytes after end-of-options", pos + 1))
            break
        if kind == OPT_NOP:
            pos += 1
            continue
        if pos + 1 >= n:
            findings.append(Finding(Severity.WARNING, "tcp-option-malformed",
                                    f"option kind {kind} has no length byte (last byte of the "
                                    "options)", pos))
            bad_kind = kind
            break
        length = options[pos + 1]
        if length < 2:
            findings.append(Finding(Severity.WARNING, "tcp-option-malformed",
                                    f"option kind {kind} has length {length}: expected >= 2",
                                    pos + 1))
            bad_kind = kind
            break
        if pos + length > n:
            findings.append(Finding(Severity.WARNING, "tcp-option-malformed",
                                    f"option kind {kind} has length {length} but only "
                                    f"{n - pos} option bytes remain", pos + 1))
            bad_kind = kind
            break
        out.append((kind, pos, options[pos + 2:pos + length]))
        pos += length
    return out, findings, bad_kind
