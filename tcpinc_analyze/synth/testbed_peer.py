"""The processes of the middlebox testbed (``record --middlebox KIND``), one per role.

``shim-a`` / ``shim-b`` stand in for the ENO implementation the kernel lacks: bound to
an NFQUEUE in host A's (B's) namespace they put ENO options on the wire (A's SYN, B's
SYN-ACK when the SYN carried ENO, A's early non-SYN segments when ENO succeeded),
read what arrived and write the outcome each host reached to a state file, so ENO is
really negotiated across the path and a middlebox can really strip it. ``client`` and
``server`` then run tcpcrypt (``recorder_peer``'s exchange) when their shim says ENO
succeeded and the same script as plain TCP otherwise. ``strip``, ``seqshift`` and
``proxy`` are middleboxes: an NFQUEUE option stripper, an NFQUEUE sequence-number
shifter and a terminating TCP proxy that re-segments.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from ..eno import SynEno, decode_option, negotiate
from ..tcpcrypt.endpoint import EndpointA, EndpointB
from ..wire import ENO_KIND, INIT1_MAGIC, INIT2_MAGIC, EnoStatus
from .nfqueue import Ipv4Tcp, NfQueue
from .recorder_peer import PeerError, _addr, _Conn, _converse, _finish, _transcript, build_script
from .recorder_peer import read_init as _read_init

SYN, ACK = 0x02, 0x10
ENO_NONSYN = bytes((ENO_KIND, 2))
_stop = False


def _on_term(_signum: int, _frame: object) -> None:
    global _stop
    _stop = True


def _ready(path: str) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(str(os.getpid()))
    tmp.replace(path)


def _write_state(directory: str, name: str, state: dict) -> None:
    path = Path(directory) / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


def _eno(option: bytes | None) -> SynEno:
    if not option:
        return SynEno()
    decoded = decode_option(option[0], option[2:])
    return SynEno((decoded,) if decoded else ())


# ------------------------------------------------------------------------- ENO shims


def run_shim(side: str, plan: dict, queue: int, ready: str) -> None:
    """Host A's or B's ENO, added to a kernel that has none."""
    eno_a, eno_b = bytes.fromhex(plan["eno_a"]), bytes.fromhex(plan["eno_b"])
    me = plan["client"] if side == "a" else plan["server"]
    state: dict[int, dict] = {}
    nfq = NfQueue(queue)
    _ready(ready)

    def handle(packet: bytes) -> bytes | None:
        p = Ipv4Tcp(packet)
        sport, dport = p.ports
        out = p.src == me
        port = (sport if side == "a" else dport) if out else (dport if side == "a" else sport)
        st = state.setdefault(port, {})
        syn, ack = p.flags & SYN, p.flags & ACK
        if side == "a":
            if out and syn and not ack:
                return p.build() if p.append_option(eno_a) else None
            if out and not syn and st.get("negotiated") and not st.get("got_nonsyn"):
                return p.build() if p.append_option(ENO_NONSYN) else None
            if not out and syn and ack and "negotiated" not in st:
                got = p.option(ENO_KIND)
                neg = negotiate(_eno(eno_a), _eno(got), True)
                st["negotiated"] = neg.status == EnoStatus.NEGOTIATED
                _write_state(plan["state_dir"], f"eno-a-{port}.json",
                             {"negotiated": st["negotiated"], "reason": neg.reason and
                              str(neg.reason), "synack_eno": got.hex() if got else None})
            elif not out and not syn:
                st["got_nonsyn"] = True
            return None
        if not out and syn and not ack:
            got = p.option(ENO_KIND)
            st["syn_eno"] = got.hex() if got else None
            st["answer"] = negotiate(_eno(got), _eno(eno_b), True).status == \
                EnoStatus.NEGOTIATED
        elif out and syn and ack and st.get("answer"):
            return p.build() if p.append_option(eno_b) else None
        elif not out and not syn and "negotiated" not in st:
            has = p.option(ENO_KIND) is not None
            st["negotiated"] = bool(st.get("answer")) and has
            _write_state(plan["state_dir"], f"eno-b-{port}.json",
                         {"negotiated": st["negotiated"], "syn_eno": st.get("syn_eno"),
                          "ack_eno": has})
        return None

    try:
        nfq.run(handle, lambda: _stop)
    finally:
        nfq.close()


# ---------------------------------------------------------------------- middleboxes


def run_strip(kind: int, queue: int, ready: str) -> None:
    """Overwrite every option of ``kind`` with NOPs in the packets queued to us."""
    nfq = NfQueue(queue)
    _ready(ready)

    def handle(packet: bytes) -> bytes | None:
        p = Ipv4Tcp(packet)
        return p.build() if p.strip(kind) else None

    try:
        nfq.run(handle, lambda: _stop)
    finally:
        nfq.close()


def run_seqshift(plan: dict, shift: int, queue: int, ready: str) -> None:
    """Shift host A's sequence space by ``shift`` in transit: A's sequence numbers up,
    the acknowledgements and SACK blocks B sends about them down."""
    nfq = NfQueue(queue)
    _ready(ready)
    a = plan["client"]

    def handle(packet: bytes) -> bytes | None:
        p = Ipv4Tcp(packet)
        if p.src == a:
            p.put("seq", p.get("seq") + shift)
        else:
            if p.flags & ACK:
                p.put("ack", p.get("ack") - shift)
            p.map_sack(lambda v: v - shift)
        return p.build()

    try:
        nfq.run(handle, lambda: _stop)
    finally:
        nfq.close()


def run_proxy(plan: dict, listen_port: int, mss: int, ready: str) -> None:
    """A terminating proxy: accept A's connection (redirected here), open our own to B
    with a small MSS, relay the bytes both ways in our own segments."""
    deadline = time.monotonic() + plan["timeout"]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", listen_port))
    listener.listen(1)
    _ready(ready)
    listener.settimeout(max(0.01, deadline - time.monotonic()))
    front, _peer = listener.accept()
    listener.close()
    back = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    back.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    back.settimeout(max(0.01, deadline - time.monotonic()))
    back.connect((plan["server"], plan["port"]))
    open_ = {front: back, back: front}
    while open_ and time.monotonic() < deadline and not _stop:
        readable, _w, _x = select.select(list(open_), [], [], 0.2)
        for sock in readable:
            data = sock.recv(700)
            other = open_[sock]
            if data:
                other.sendall(data)
            else:
                other.shutdown(socket.SHUT_WR)
                del open_[sock]
    front.close()
    back.close()


# --------------------------------------------------------------------------- peers


def _wait_state(plan: dict, name: str, deadline: float) -> dict:
    path = Path(plan["state_dir"]) / name
    while not path.exists():
        if time.monotonic() > deadline:
            raise PeerError(f"no ENO outcome from the shim ({name})")
        time.sleep(0.005)
    return json.loads(path.read_text())


def _plain(conn: _Conn, plan: dict, is_a: bool) -> dict:
    """The script as plain TCP: each side writes its messages and reads the other's."""
    for from_a, data in build_script(plan):
        if from_a == is_a:
            conn.send(data)
        else:
            got = conn.recv_exact(len(data), "a plain message")
            if got != data:
                raise PeerError("plain data differs from the script")
    return {"sent": {"frames": [], "rekeys": 0}, "received": {"stream_len": conn.received_len}}


def run_client(plan: dict) -> dict:
    """Host A."""
    deadline = time.monotonic() + plan["timeout"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.bind((plan["client"], 0))
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        sock.connect((plan["server"], plan["port"]))
        local, remote = _addr(sock.getsockname()), _addr(sock.getpeername())
        eno = _wait_state(plan, f"eno-a-{sock.getsockname()[1]}.json", deadline)
        conn = _Conn(sock, deadline)
        result: dict = {"eno": eno}
        if eno["negotiated"]:
            endpoint = EndpointA(plan["tep"], plan["aeads_a"], random.Random(plan["rng_a"]))
            conn.send(endpoint.init1)
            init2 = _read_init(conn, INIT2_MAGIC, "Init2")
            keys = endpoint.receive_init2(init2, _transcript(plan), plan["tep"])
            result.update(_converse(conn, plan, True, keys, len(endpoint.init1), len(init2)))
            result.update({"session_id": keys.session_id.hex(),
                           "keys": {"n_a": endpoint.nonce.hex(), "ss": keys.ss.hex(),
                                    "aead": keys.aead, "tep": keys.tep}})
        else:
            result.update(_plain(conn, plan, True))
        sock.shutdown(socket.SHUT_WR)
        conn.expect_eof()
        result.update({"role": "client", "local": local, "peer": remote})
        return _finish(conn, result)


def run_server(plan: dict) -> dict:
    """Host B."""
    deadline = time.monotonic() + plan["timeout"]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((plan["server"], plan["port"]))
        listener.listen(1)
        _ready(plan["ready"])
        listener.settimeout(max(0.01, deadline - time.monotonic()))
        sock, peer = listener.accept()
    with sock:
        eno = _wait_state(plan, f"eno-b-{peer[1]}.json", deadline)
        conn = _Conn(sock, deadline)
        result: dict = {"eno": eno}
        if eno["negotiated"]:
            init1 = _read_init(conn, INIT1_MAGIC, "Init1")
            endpoint = EndpointB(plan["tep"], plan["aeads_b"], random.Random(plan["rng_b"]))
            init2 = endpoint.receive_init1(init1, _transcript(plan), plan["tep"])
            conn.send(init2)
            keys = endpoint.keys
            assert keys is not None
            result.update(_converse(conn, plan, False, keys, len(init2), len(init1)))
            result["session_id"] = keys.session_id.hex()
        else:
            result.update(_plain(conn, plan, False))
        conn.expect_eof()
        result.update({"role": "server", "local": _addr(sock.getsockname()),
                       "peer": _addr(peer)})
        return _finish(conn, result)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one role; peers write a result JSON (also on failure)."""
    parser = argparse.ArgumentParser(prog="python -m tcpinc_analyze.synth.testbed_peer")
    parser.add_argument("role", choices=("shim-a", "shim-b", "strip", "seqshift", "proxy",
                                         "client", "server"))
    parser.add_argument("--plan", required=True, type=Path)
    parser.add_argument("--result", type=Path)
    parser.add_argument("--ready")
    parser.add_argument("--queue", type=int, default=1)
    parser.add_argument("--kind", type=int, default=ENO_KIND)
    parser.add_argument("--shift", type=int, default=0)
    parser.add_argument("--listen", type=int, default=9443)
    parser.add_argument("--mss", type=int, default=536)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_term)
    plan = json.loads(args.plan.read_text())
    if args.role in ("client", "server"):
        try:
            result = (run_client if args.role == "client" else run_server)(plan)
            result["ok"] = True
            status = 0
        except Exception as exc:  # every failure must reach the recorder
            traceback.print_exc()
            result = {"role": args.role, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
            status = 1
        assert args.result is not None
        args.result.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        return status
    if args.role in ("shim-a", "shim-b"):
        run_shim(args.role[-1], plan, args.queue, args.ready)
    elif args.role == "strip":
        run_strip(args.kind, args.queue, args.ready)
    elif args.role == "seqshift":
        run_seqshift(plan, args.shift, args.queue, args.ready)
    else:
        run_proxy(plan, args.listen, args.mss, args.ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
