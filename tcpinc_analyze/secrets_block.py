"""Key logs embedded in captures: pcapng Decryption Secrets Blocks of type "TCPC".

Like ``editcap --inject-secrets`` for TLS, so a capture and its keys travel as one file.
The block goes before the first packet, so single-pass readers see the keys in time.
"""

from __future__ import annotations

from pathlib import Path

from .capture.reader import ReadProblem, Record, SecretsBlock, open_input, read_capture
from .synth.capture_writer import PcapngWriter
from .wire import DSB_SECRETS_TYPE_TCPCRYPT


def inject_secrets(capture: str, keylog_text: str, output: Path) -> tuple[int, list[str]]:
    """Copy a capture to pcapng with the key log in a DSB first.

    Returns (packets written, problems met while reading). Existing secrets blocks of
    the input are kept (after ours).
    """
    problems: list[str] = []
    stream = open_input(capture)
    interfaces: dict[tuple[int, int], int] = {}
    packets = 0
    try:
        with open(output, "wb") as out:
            writer = PcapngWriter(out)
            writer.write_secrets(DSB_SECRETS_TYPE_TCPCRYPT, keylog_text.encode())
            for item in read_capture(stream, capture):
                if isinstance(item, Record):
                    key = (item.interface, item.linktype)
                    iface = interfaces.get(key)
                    if iface is None:
                        iface = interfaces[key] = writer.add_interface(item.linktype, tsresol=9)
                    writer.write(iface, item.ts_ns, item.data)
                    packets += 1
                elif isinstance(item, SecretsBlock):
                    writer.write_secrets(item.secrets_type, item.data)
                elif isinstance(item, ReadProblem):
                    problems.append(item.message)
    finally:
        if capture != "-":
            stream.close()
    return packets, problems


def extract_secrets(capture: str) -> list[str]:
    """The key-log texts of every tcpcrypt DSB in a capture, in file order."""
    stream = open_input(capture)
    try:
        return [item.data.decode("utf-8", errors="replace")
                for item in read_capture(stream, capture)
                if isinstance(item, SecretsBlock)
                and item.secrets_type == DSB_SECRETS_TYPE_TCPCRYPT]
    finally:
        if capture != "-":
            stream.close()
