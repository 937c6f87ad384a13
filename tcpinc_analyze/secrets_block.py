"""Key logs embedded in captures: pcapng Decryption Secrets Blocks of type "TCPC".

Like ``editcap --inject-secrets`` for TLS, so a capture and its keys travel as one file.
The block goes before the first packet, so single-pass readers see the keys in time.
The copy keeps every record as read (link type, timestamp, original length) and is
written through a temporary file renamed into place, 0600: it holds secrets.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .capture.reader import ReadProblem, Record, SecretsBlock, open_input, read_capture
from .output.record_writer import PcapngCopy
from .output.safe_files import atomic_output
from .wire import DSB_SECRETS_TYPE_TCPCRYPT


def inject_secrets(capture: str, keylog_text: str, output: Path, *,
                   inputs: Iterable[str] = ()) -> tuple[int, list[str]]:
    """Copy a capture to pcapng with the key log in a DSB first.

    Returns (packets written, problems met while reading). Existing secrets blocks of
    the input are kept (after ours). Raises OutputError (nothing written) for a record
    pcapng cannot hold or an output that is an input, CaptureError for no capture.
    """
    problems: list[str] = []
    stream = open_input(capture)
    packets = 0
    try:
        with atomic_output(output, inputs=[capture, *inputs]) as out:
            items = read_capture(stream, capture)
            writer = PcapngCopy(out, str(output))
            if keylog_text:
                writer.secrets(DSB_SECRETS_TYPE_TCPCRYPT, keylog_text.encode())
            for item in items:
                if isinstance(item, Record):
                    writer.write(item, item.data)
                    packets += 1
                elif isinstance(item, SecretsBlock):
                    writer.secrets(item.secrets_type, item.data)
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
