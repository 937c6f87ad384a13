"""One side of a recorded tcpcrypt conversation over a real kernel TCP socket.

``tcpinc_analyze.synth.recorder`` runs this module twice, inside two network
namespaces: ``server`` (host B, the passive opener) and ``client`` (host A). Both read
the same plan JSON, so each knows exactly what the other will send: the Init messages
are exchanged for real (EndpointA/EndpointB), then every application message travels
as tcpcrypt frames and the receiver checks each decrypted frame against the script. Any
mismatch, timeout or protocol error ends the peer with a non-zero exit status and an
``error`` in its result JSON.

The kernel knows nothing of TCP-ENO; the plan carries the ENO options the recorder
will insert into the captured handshake afterwards, so both peers compute the same
transcript those options define.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..tcpcrypt.endpoint import EndpointA, EndpointB
from ..tcpcrypt.frames import FrameOpener, FrameSealer
from ..tcpcrypt.keyschedule import SessionKeys
from ..tcpcrypt.messages import message_length
from ..wire import (
    FRAME_CONTROL_REKEY,
    FRAME_HEADER_LEN,
    INIT1_MAGIC,
    INIT2_MAGIC,
    INIT_MESSAGE_LEN_MAX,
    PLAINTEXT_FINP,
    eno_transcript,
)
from .scenarios import text_body

ROLE_SERVER = "server"
ROLE_CLIENT = "client"
_RECV_CHUNK = 65536
RECORDER_WORDS = ("tcp", "eno", "crypt", "frame", "session", "nonce", "key", "stream", "segment",
          "window", "option", "cipher", "tag", "verify", "packet", "kernel", "veth", "socket")


class PeerError(Exception):
    """The conversation did not go as the plan says."""


# ----------------------------------------------------------------------------- the script


def build_script(plan: dict) -> list[tuple[bool, bytes]]:
    """The application messages of the plan, in order, as (from_a, data)."""
    script = plan["script"]
    rng = random.Random(plan["content_seed"])
    host = f"{plan['server']}:{plan['port']}"
    messages: list[tuple[bool, bytes]] = []
    if script["kind"] == "http":
        for n in range(script.get("requests", 1)):
            path = script.get("path", "/index.txt")
            if script.get("requests", 1) > 1:
                path += f"?n={n}"
            req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tcpinc-record\r\n"
                   "Accept: */*\r\n\r\n").encode()
            body = text_body(rng, words=RECORDER_WORDS, size=script["response_size"])
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            messages += [(True, req), (False, head + body)]
    elif script["kind"] == "bulk":
        for n in range(script["rounds"]):
            body = text_body(rng, words=RECORDER_WORDS, size=script["upload_size"])
            head = (f"PUT /upload/{n} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            digest = hashlib.sha256(body).hexdigest()
            reply_body = f"stored {len(body)} bytes, sha256 {digest}\n".encode()
            reply = (f"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n"
                     f"Content-Length: {len(reply_body)}\r\n\r\n").encode() + reply_body
            messages += [(True, head + body), (False, reply)]
    else:
        raise PeerError(f"unknown script kind {script['kind']!r}")
    return messages


@dataclass(frozen=True)
class FrameSpec:
    """One frame the script calls for."""

    from_a: bool
    index: int
    """Index among the frames of its direction (what rekey indexes count)."""
    data: bytes
    rekey: bool
    fin: bool


def frame_schedule(plan: dict, messages: Sequence[tuple[bool, bytes]] | None = None
                   ) -> list[list[FrameSpec]]:
    """Per message, the frames that carry it. A sender first answers each rekey of the
    peer it has received with a rekey frame of its own (RFC 8548 §3.8; the messages
    alternate, so it has received all of them), then initiates its planned rekeys; the
    last frame of a direction has FINp."""
    if messages is None:
        messages = build_script(plan)
    size = plan["frame_data_max"]
    rekeys = {True: set(plan["rekey_ab"]), False: set(plan["rekey_ba"])}
    last = {d: max((k for k, (f, _) in enumerate(messages) if f == d), default=-1)
            for d in (True, False)}
    counters = {True: 0, False: 0}
    gens = {True: 0, False: 0}
    out: list[list[FrameSpec]] = []
    for k, (from_a, data) in enumerate(messages):
        chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        answers = max(0, gens[not from_a] - gens[from_a])
        extra = max(0, answers - len(chunks))
        chunks = [b""] * extra + chunks
        specs = []
        for n, chunk in enumerate(chunks):
            index = counters[from_a]
            counters[from_a] += 1
            rekey = n < answers or index in rekeys[from_a]
            gens[from_a] += rekey
            specs.append(FrameSpec(from_a, index, chunk, rekey,
                                   k == last[from_a] and n == len(chunks) - 1))
        out.append(specs)
    return out


# ------------------------------------------------------------------------------- sockets


class _Conn:
    """A socket with an overall deadline and running digests of both directions."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buf = bytearray()
        self.sent = hashlib.sha256()
        self.sent_len = 0
        self.received = hashlib.sha256()
        self.received_len = 0

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise PeerError("timed out")
        self.sock.settimeout(left)

    def send(self, data: bytes) -> None:
        self._arm()
        try:
            self.sock.sendall(data)
        except TimeoutError as exc:
            raise PeerError("timed out while sending") from exc
        self.sent.update(data)
        self.sent_len += len(data)

    def recv_exact(self, n: int, what: str) -> bytes:
        while len(self.buf) < n:
            self._arm()
            try:
                chunk = self.sock.recv(_RECV_CHUNK)
            except TimeoutError as exc:
                raise PeerError(f"timed out while reading {what}") from exc
            if not chunk:
                raise PeerError(f"connection closed while reading {what} "
                                f"({len(self.buf)} of {n} bytes)")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        self.received.update(out)
        self.received_len += len(out)
        return out

    def expect_eof(self) -> None:
        """Read until the peer's FIN; any further byte is a protocol error."""
        while True:
            if self.buf:
                raise PeerError(f"{len(self.buf)} unexpected bytes after the last frame")
            self._arm()
            try:
                chunk = self.sock.recv(_RECV_CHUNK)
            except TimeoutError as exc:
                raise PeerError("timed out waiting for the peer's FIN") from exc
            if not chunk:
                return
            self.buf += chunk


def read_init(conn: _Conn, magic: int, name: str) -> bytes:
    """Read exactly one Init message: 8 bytes of header, then the rest it announces."""
    head = conn.recv_exact(8, name)
    length = message_length(head, magic)
    if length is None:
        raise PeerError(f"{name}: bad magic 0x{head[:4].hex()}")
    if not 8 < length <= INIT_MESSAGE_LEN_MAX:
        raise PeerError(f"{name}: message_len {length} out of range")
    return head + conn.recv_exact(length - 8, name)


def _converse(conn: _Conn, plan: dict, is_a: bool, keys: SessionKeys, init_len: int,
              peer_init_len: int) -> dict:
    chain = keys.chain()
    sealer = FrameSealer(keys.aead, lambda g: chain.key(g, is_a), offset=init_len,
                         init_len=init_len)
    opener = FrameOpener(keys.aead, lambda g: chain.key(g, not is_a), init_len=peer_init_len)
    sent_frames: list[dict] = []
    sent_data = hashlib.sha256()
    recv_data = hashlib.sha256()
    recv_frames = 0
    recv_rekeys = 0
    recv_offset = 0
    for k, specs in enumerate(frame_schedule(plan)):
        if specs[0].from_a == is_a:
            out = bytearray()
            for spec in specs:
                start = sealer.offset
                frame = sealer.seal(spec.data, fin=spec.fin, rekey=spec.rekey)
                sent_frames.append({"offset": start, "size": len(frame),
                                    "data_len": len(spec.data), "rekey": spec.rekey,
                                    "fin": spec.fin})
                sent_data.update(spec.data)
                out += frame
            conn.send(bytes(out))
            continue
        for spec in specs:
            what = f"frame {spec.index} of message {k}"
            head = conn.recv_exact(FRAME_HEADER_LEN, what)
            control, length = head[0], int.from_bytes(head[1:3], "big")
            body = conn.recv_exact(length, what)
            if bool(control & FRAME_CONTROL_REKEY) != spec.rekey:
                raise PeerError(f"{what}: rekey bit {control & 1}, expected {int(spec.rekey)}")
            plain = opener.open(control, body, peer_init_len + recv_offset)
            if plain is None:
                raise PeerError(f"{what}: tag does not verify at offset {recv_offset}")
            if plain.data != spec.data:
                raise PeerError(f"{what}: decrypted data differs from what the peer intended")
            if bool(plain.flags & PLAINTEXT_FINP) != spec.fin:
                raise PeerError(f"{what}: FIN flag {plain.flags & 1}, expected {int(spec.fin)}")
            recv_offset += FRAME_HEADER_LEN + length
            recv_frames += 1
            recv_rekeys += spec.rekey
            recv_data.update(plain.data)
    return {
        "sent": {"frames": sent_frames, "rekeys": sum(f["rekey"] for f in sent_frames),
                 "data_sha256": sent_data.hexdigest()},
        "received": {"frames": recv_frames, "rekeys": recv_rekeys,
                     "data_sha256": recv_data.hexdigest(),
                     "stream_len": peer_init_len + recv_offset},
    }


def _finish(conn: _Conn, result: dict) -> dict:
    result["sent"]["stream_len"] = conn.sent_len
    result["sent"]["stream_sha256"] = conn.sent.hexdigest()
    result["received"]["stream_sha256"] = conn.received.hexdigest()
    if conn.received_len != result["received"]["stream_len"]:
        raise PeerError("internal: received byte count mismatch")
    return result


def _addr(sockname: tuple) -> str:
    return f"{sockname[0]}:{sockname[1]}"


def _transcript(plan: dict) -> bytes:
    return eno_transcript(bytes.fromhex(plan["eno_a"]), bytes.fromhex(plan["eno_b"]))


def run_server(plan: dict) -> dict:
    """Host B: listen, accept one connection, answer Init1, serve the script."""
    deadline = time.monotonic() + plan["timeout"]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((plan["server"], plan["port"]))
        listener.listen(1)
        ready = Path(plan["ready"])
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(ready)
        listener.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            sock, peer = listener.accept()
        except TimeoutError as exc:
            raise PeerError("timed out waiting for the client") from exc
    with sock:
        local = _addr(sock.getsockname())
        conn = _Conn(sock, deadline)
        init1 = read_init(conn, INIT1_MAGIC, "Init1")
        endpoint = EndpointB(plan["tep"], plan["aeads_b"], random.Random(plan["rng_b"]))
        init2 = endpoint.receive_init1(init1, _transcript(plan), plan["tep"])
        conn.send(init2)
        keys = endpoint.keys
        assert keys is not None
        result = _converse(conn, plan, False, keys, len(init2), len(init1))
        conn.expect_eof()
        result.update({"role": ROLE_SERVER, "local": local,
                       "peer": _addr(peer), "init": init2.hex(),
                       "session_id": keys.session_id.hex()})
        return _finish(conn, result)


def run_client(plan: dict) -> dict:
    """Host A: connect, send Init1, complete the exchange, run the script, close first."""
    deadline = time.monotonic() + plan["timeout"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.bind((plan["client"], 0))
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            sock.connect((plan["server"], plan["port"]))
        except TimeoutError as exc:
            raise PeerError("timed out connecting to the server") from exc
        local, remote = _addr(sock.getsockname()), _addr(sock.getpeername())
        conn = _Conn(sock, deadline)
        endpoint = EndpointA(plan["tep"], plan["aeads_a"], random.Random(plan["rng_a"]))
        conn.send(endpoint.init1)
        init2 = read_init(conn, INIT2_MAGIC, "Init2")
        keys = endpoint.receive_init2(init2, _transcript(plan), plan["tep"])
        result = _converse(conn, plan, True, keys, len(endpoint.init1), len(init2))
        sock.shutdown(socket.SHUT_WR)
        conn.expect_eof()
        result.update({"role": ROLE_CLIENT, "local": local, "peer": remote,
                       "init": endpoint.init1.hex(),
                       "session_id": keys.session_id.hex(),
                       "keys": {"n_a": endpoint.nonce.hex(), "ss": keys.ss.hex(),
                                "aead": keys.aead, "tep": keys.tep}})
        return _finish(conn, result)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run one role and write its result JSON (also on failure)."""
    parser = argparse.ArgumentParser(prog="python -m tcpinc_analyze.synth.recorder_peer",
                                     description="one side of a recorded tcpcrypt exchange")
    parser.add_argument("role", choices=(ROLE_SERVER, ROLE_CLIENT))
    parser.add_argument("--plan", required=True, type=Path)
    parser.add_argument("--result", required=True, type=Path)
    args = parser.parse_args(argv)
    plan = json.loads(args.plan.read_text())
    try:
        result = (run_server if args.role == ROLE_SERVER else run_client)(plan)
        result["ok"] = True
        status = 0
    except Exception as exc:  # every failure must reach the recorder
        traceback.print_exc()
        result = {"role": args.role, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        status = 1
    args.result.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
