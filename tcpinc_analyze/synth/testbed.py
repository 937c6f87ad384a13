"""A testbed of real middleboxes: ``record http --middlebox KIND``.

Three throw-away network namespaces (client A, middlebox M, server B) joined by two
veth pairs with offloads off; M forwards between them and is the middlebox, built from
real Linux parts:

- ``nat``: nftables source NAT to M's address and a port range (address and port);
- ``mss-clamp``: nftables ``tcp option maxseg size set 1200`` on SYNs, both ways;
- ``strip-eno``: an NFQUEUE program that overwrites kind 69 with NOPs in B->A
  segments (nft 1.0 cannot name option 69 in ``reset tcp option``, and this kernel has
  no nft ``queue`` expression: iptables' NFQUEUE target feeds the program);
- ``seq-shift``: an NFQUEUE program that shifts A's sequence space by a constant;
- ``proxy``: nftables redirects A's connection to a TCP proxy in M that opens its own
  connection to B (timestamps, SACK and window scaling off in M, MSS 536: it drops
  every option and re-segments).

tcpdump captures in M on both sides: FIRST on the interface towards A (packets as they
enter or leave towards A), SECOND on the interface towards B. Hosts A and B speak ENO
through NFQUEUE shims (``testbed_peer``) and run tcpcrypt when their shim says ENO
succeeded, plain TCP otherwise. Traffic never leaves the three namespaces; one overall
timeout bounds everything, and the namespaces are deleted whatever happens.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..keylog import KeyLogWriter
from .recorder import (
    NAMESPACE_PREFIX,
    OFFLOADS,
    RECORDER_SCENARIOS,
    RecorderError,
    _Children,
    _Deadline,
    _peer_env,
    _run,
    _stop_tcpdump,
    _wait_for,
    _wait_peers,
    build_plan,
    check_environment,
    read_capture,
)

MIDDLEBOXES = ("nat", "mss-clamp", "strip-eno", "seq-shift", "proxy")
ADDR_A = "192.0.2.1"
ADDR_MA = "192.0.2.254"
ADDR_MB = "198.51.100.254"
ADDR_B = "198.51.100.2"
PORT = 8443
NAT_PORTS = (40000, 40099)
CLAMP_MSS = 1200
PROXY_PORT = 9443
PROXY_MSS = 536
SNAPLEN = 262_144
MAX_PACKETS = 3000
MAX_CAPTURE_BYTES = 1_500_000
_counter = iter(range(1 << 30))


class _Three:
    """Namespaces A, M, B; ``delete()`` is safe at any time."""

    def __init__(self) -> None:
        tag = f"{os.getpid()}-{next(_counter)}"
        self.a, self.m, self.b = (f"{NAMESPACE_PREFIX}{r}-{tag}" for r in ("a", "m", "b"))
        self.created: list[str] = []

    def create(self, deadline: _Deadline) -> None:
        for ns in (self.a, self.m, self.b):
            self.created.append(ns)
            proc = _run(["ip", "netns", "add", ns], "creating a network namespace",
                        check=False, timeout=min(10, deadline.left("creating namespaces")))
            if proc.returncode != 0:
                self.created.remove(ns)
                raise RecorderError(f"cannot create network namespace {ns}: "
                                    f"{proc.stderr.strip()}")
        a, m, b = self.a, self.m, self.b
        steps = [
            ["ip", "link", "add", "veth-a", "netns", a, "type", "veth", "peer", "name",
             "veth-ma", "netns", m],
            ["ip", "link", "add", "veth-mb", "netns", m, "type", "veth", "peer", "name",
             "veth-b", "netns", b],
            ["ip", "-n", a, "addr", "add", f"{ADDR_A}/24", "dev", "veth-a"],
            ["ip", "-n", m, "addr", "add", f"{ADDR_MA}/24", "dev", "veth-ma"],
            ["ip", "-n", m, "addr", "add", f"{ADDR_MB}/24", "dev", "veth-mb"],
            ["ip", "-n", b, "addr", "add", f"{ADDR_B}/24", "dev", "veth-b"],
        ]
        for cmd in steps:
            _run(cmd, "setting up the namespaces",
                 timeout=min(10, deadline.left("setting up the namespaces")))
        for ns, dev in ((a, "veth-a"), (m, "veth-ma"), (m, "veth-mb"), (b, "veth-b")):
            for feature in OFFLOADS:
                _run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, feature, "off"],
                     "turning offloads off", check=False,
                     timeout=min(10, deadline.left("turning offloads off")))
        for ns, dev in ((a, "lo"), (a, "veth-a"), (m, "lo"), (m, "veth-ma"), (m, "veth-mb"),
                        (b, "lo"), (b, "veth-b")):
            _run(["ip", "-n", ns, "link", "set", dev, "up"], "bringing links up")
        _run(["ip", "-n", a, "route", "add", "default", "via", ADDR_MA], "routing")
        _run(["ip", "-n", b, "route", "add", "default", "via", ADDR_MB], "routing")
        _run(["ip", "netns", "exec", m, "sysctl", "-qw", "net.ipv4.ip_forward=1"], "forwarding")

    def exec(self, ns: str, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *cmd]

    def delete(self) -> list[str]:
        errors = []
        for ns in reversed(self.created):
            proc = _run(["ip", "netns", "del", ns], "deleting a namespace", check=False)
            if proc.returncode != 0 and "No such file" not in proc.stderr:
                errors.append(f"{ns}: {proc.stderr.strip()}")
        self.created.clear()
        return errors


def check_testbed_environment(kind: str) -> None:
    """RecorderError unless root, ip, tcpdump, ethtool and this kind's tools exist."""
    check_environment()
    need = ["iptables"] if kind in ("strip-eno", "seq-shift") else []
    need += ["nft"] if kind in ("nat", "mss-clamp", "proxy") else []
    missing = [t for t in need if shutil.which(t) is None]
    if missing:
        raise RecorderError(f"the {kind} middlebox needs {', '.join(missing)} on PATH "
                            "(Debian packages nftables, iptables)")


def _nft(ns: _Three, rules: str, tmp: Path) -> None:
    path = tmp / "rules.nft"
    path.write_text(rules)
    _run(ns.exec(ns.m, "nft", "-f", str(path)), "loading the middlebox's nftables rules")


def _middlebox(kind: str, ns: _Three, children: _Children, plan_path: Path, tmp: Path,
               deadline: _Deadline, shift: int) -> None:
    py = [sys.executable, "-m", "tcpinc_analyze.synth.testbed_peer"]
    m = ns.m
    if kind == "nat":
        to = f"{ADDR_MB}:{NAT_PORTS[0]}-{NAT_PORTS[1]}"
        _nft(ns, f"""table ip tcpinc_mb {{
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "veth-mb" ip saddr {ADDR_A} meta l4proto tcp snat to {to}
  }}
}}
""", tmp)
    elif kind == "mss-clamp":
        _nft(ns, f"""table inet tcpinc_mb {{
  chain forward_mb {{
    type filter hook forward priority mangle; policy accept;
    tcp flags syn tcp option maxseg size set {CLAMP_MSS}
  }}
}}
""", tmp)
    elif kind in ("strip-eno", "seq-shift"):
        for sysctl in ("net.netfilter.nf_conntrack_tcp_be_liberal=1",):
            _run(ns.exec(m, "sysctl", "-qw", sysctl), "setting sysctls", check=False)
        _run(ns.exec(m, "iptables", "-t", "raw", "-A", "PREROUTING", "-j", "CT", "--notrack"),
             "turning conntrack off in the middlebox")
        match = ["-i", "veth-mb"] if kind == "strip-eno" else []
        _run(ns.exec(m, "iptables", "-t", "mangle", "-A", "FORWARD", *match, "-p", "tcp",
                     "-j", "NFQUEUE", "--queue-num", "2"), "queueing to the middlebox")
        ready = tmp / "mb.ready"
        args = (["strip", "--kind", "69"] if kind == "strip-eno"
                else ["seqshift", "--shift", str(shift)])
        child = children.start("middlebox", ns.exec(m, *py, *args, "--plan", str(plan_path),
                                                    "--queue", "2", "--ready", str(ready)))
        _wait_for(ready.exists, child, deadline, "waiting for the middlebox program")
    elif kind == "proxy":
        for sysctl in ("net.ipv4.tcp_timestamps=0", "net.ipv4.tcp_sack=0",
                       "net.ipv4.tcp_window_scaling=0"):
            _run(ns.exec(m, "sysctl", "-qw", sysctl), "setting the proxy's TCP options")
        _nft(ns, f"""table ip tcpinc_mb {{
  chain pre {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "veth-ma" tcp dport {PORT} redirect to :{PROXY_PORT}
  }}
}}
""", tmp)
        ready = tmp / "mb.ready"
        child = children.start("proxy", ns.exec(m, *py, "proxy", "--plan", str(plan_path),
                                                "--listen", str(PROXY_PORT), "--mss",
                                                str(PROXY_MSS), "--ready", str(ready)))
        _wait_for(ready.exists, child, deadline, "waiting for the proxy to listen")
    else:
        raise RecorderError(f"unknown middlebox {kind!r}; choose one of "
                            f"{', '.join(MIDDLEBOXES)}")


def record_middlebox(kind: str, first: Path, second: Path, keylog: Path, *,
                     expected_path: Path | None = None, seed: int = 1,
                     timeout: float = 30.0) -> str:
    """Record the http scenario through a real middlebox, capturing on both sides of
    it; writes FIRST (A's side), SECOND (B's side), the key log and the expected
    comparison. Raises RecorderError; the namespaces are always deleted."""
    if kind not in MIDDLEBOXES:
        raise RecorderError(f"unknown middlebox {kind!r}; choose one of "
                            f"{', '.join(MIDDLEBOXES)}")
    check_testbed_environment(kind)
    deadline = _Deadline(timeout)
    ns = _Three()
    shift = random.Random(f"tcpinc-testbed/{kind}/{seed}").getrandbits(32)
    with tempfile.TemporaryDirectory(prefix="tcpinc-testbed-") as tmp_name:
        tmp = Path(tmp_name)
        children = _Children(tmp, _peer_env())
        try:
            out = _record_in(kind, seed, shift, deadline, ns, children, tmp)
        finally:
            children.kill_all()
            problems = ns.delete()
    if problems:
        raise RecorderError(f"cannot delete namespaces: {'; '.join(problems)}")
    cap1, cap2, keylog_text, expected, line = out
    try:
        first.write_bytes(cap1)
        second.write_bytes(cap2)
        fd = os.open(keylog, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:  # session secrets: owner only
            fh.write(keylog_text)
        if expected_path is not None:
            expected_path.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        raise RecorderError(f"cannot write output: {exc}") from exc
    return line


def _record_in(kind: str, seed: int, shift: int, deadline: _Deadline, ns: _Three,
               children: _Children, tmp: Path) -> tuple[bytes, bytes, str, dict, str]:
    sc = RECORDER_SCENARIOS["http"]
    plan = build_plan(sc, seed, deadline.timeout, tmp / "server.ready")
    plan.update({"client": ADDR_A, "server": ADDR_B, "port": PORT, "state_dir": str(tmp)})
    plan_path = tmp / "plan.json"
    plan_path.write_text(json.dumps(plan, indent=1))
    ns.create(deadline)
    py = [sys.executable, "-m", "tcpinc_analyze.synth.testbed_peer"]
    for side, host in (("a", ns.a), ("b", ns.b)):
        for chain in ("OUTPUT", "INPUT"):
            _run(ns.exec(host, "iptables", "-A", chain, "-p", "tcp", "-j", "NFQUEUE",
                         "--queue-num", "1"), "queueing to the ENO shim")
        ready = tmp / f"shim-{side}.ready"
        child = children.start(f"ENO shim {side.upper()}", ns.exec(
            host, *py, f"shim-{side}", "--plan", str(plan_path), "--queue", "1", "--ready",
            str(ready)))
        _wait_for(ready.exists, child, deadline, f"waiting for host {side.upper()}'s ENO shim")
    _middlebox(kind, ns, children, plan_path, tmp, deadline, shift)
    dumps = {}
    for name, dev in (("first", "veth-ma"), ("second", "veth-mb")):
        dumps[name] = children.start(f"tcpdump {name}", ns.exec(
            ns.m, "tcpdump", "-i", dev, "-w", str(tmp / f"{name}.pcap"), "-U",
            "--immediate-mode", "--time-stamp-precision", "nano", "-Z", "root", "-n",
            "-s", str(SNAPLEN), "-c", str(MAX_PACKETS), "tcp"))
    for name, child in dumps.items():
        _wait_for(lambda c=child: "listening on" in c.err_tail(), child, deadline,
                  f"waiting for tcpdump ({name}) to start")
    results = {r: tmp / f"{r}.result.json" for r in ("server", "client")}
    server = children.start("server (host B)", ns.exec(
        ns.b, *py, "server", "--plan", str(plan_path), "--result", str(results["server"])))
    _wait_for(Path(plan["ready"]).exists, server, deadline, "waiting for the server")
    client = children.start("client (host A)", ns.exec(
        ns.a, *py, "client", "--plan", str(plan_path), "--result", str(results["client"])))
    _wait_peers({client: results["client"], server: results["server"]}, deadline)
    res = {r: json.loads(p.read_text()) for r, p in results.items()}
    time.sleep(0.5)  # the last ACKs reach both capture files
    for name, child in dumps.items():
        if _stop_tcpdump(child):
            raise RecorderError(f"tcpdump ({name}) reports packets dropped by the kernel")
    caps = {n: (tmp / f"{n}.pcap").read_bytes() for n in ("first", "second")}
    for n, data in caps.items():
        segs, _snap = read_capture(tmp / f"{n}.pcap")
        fins = {s.src for s in segs if s.flags & 0x01}
        if len(fins) != 2:
            raise RecorderError(f"the {n} capture misses a FIN (got {len(segs)} packets)")
        if len(data) > MAX_CAPTURE_BYTES:
            raise RecorderError(f"the {n} capture is {len(data)} bytes, over the bound")
    client, server = res["client"], res["server"]
    if client["sent"]["stream_sha256"] != server["received"]["stream_sha256"] or \
            server["sent"]["stream_sha256"] != client["received"]["stream_sha256"]:
        raise RecorderError("the peers did not receive what the other sent")
    keylog_io = io.StringIO()
    writer = KeyLogWriter(keylog_io)
    writer.comment(f"tcpinc-analyze record http --middlebox {kind} --seed {seed}")
    if "keys" in client:
        writer.session_secret(bytes.fromhex(client["keys"]["n_a"]),
                              bytes.fromhex(client["keys"]["ss"]))
    expected = _expected(kind, seed, shift, client, server)
    line = (f"http through {kind} (seed {seed}): ENO at A "
            f"{'negotiated' if client['eno']['negotiated'] else 'fell back'}, at B "
            f"{'negotiated' if server['eno']['negotiated'] else 'fell back'}; "
            f"A {client['local']} -> {client['peer']}, B saw {server['peer']}")
    return caps["first"], caps["second"], keylog_io.getvalue(), expected, line


def _expected(kind: str, seed: int, shift: int, client: dict, server: dict) -> dict:
    """The comparison the capture pair must give, from what the testbed set up."""
    neg = ("negotiated", None, "negotiated", None)
    rec: dict = {"in": "both", "option_changes_exact": True, "translated":
                 {"addresses": False, "ports": False}, "seq_shift": {"ab": 0, "ba": 0},
                 "resegmented": {"ab": False, "ba": False},
                 "payload_changed": {"ab": False, "ba": False}}
    changes: list[list] = []
    if kind == "nat":
        cause, eno = "negotiated", neg
        rec["translated"] = {"addresses": True, "ports": True}
    elif kind == "mss-clamp":
        cause, eno = "negotiated", neg
        changes = [["ab", "syn", 2, "modified"], ["ba", "syn-ack", 2, "modified"]]
    elif kind == "strip-eno":
        cause = "path-stripped-eno"
        eno = ("fallback", "synack-without-eno", "fallback", "ack-without-eno")
        changes = [["ba", "syn-ack", 69, "removed"]]
    elif kind == "seq-shift":
        cause, eno = "negotiated", neg
        rec["seq_shift"] = {"ab": shift, "ba": 0}
        rec["option_changes_exact"] = False  # SACK blocks, if any, are shifted too
    else:
        cause, eno = "path-stripped-eno", ("fallback", "synack-without-eno", "absent",
                                           "absent")
        changes = [["ab", "syn", 69, "removed"], ["ab", "syn", 8, "removed"],
                   ["ab", "syn", 2, "modified"]]
        rec.update({"option_changes_exact": False, "seq_shift": None,
                    "translated": {"addresses": True, "ports": True},
                    "resegmented": {"ab": False, "ba": True}})
    b_peer = server["peer"]
    rec.update({
        "cause": cause,
        "eno": {"first": eno[0], "reason_first": eno[1], "second": eno[2],
                "reason_second": eno[3]},
        "option_changes": sorted(changes),
        "first": {"id": 0, "a": client["local"], "b": client["peer"]},
        "second": {"id": 0, "a": b_peer, "b": server["local"]},
    })
    if client["eno"]["negotiated"] != (eno[0] == "negotiated"):
        raise RecorderError(f"host A's ENO outcome {client['eno']} is not what the {kind} "
                            "middlebox should give")
    return {"schema": 1, "pair": f"recorded-{kind}", "origin": "recorded", "seed": seed,
            "summary": f"real Linux middlebox ({kind}) between two namespaces, captured on "
                       "both sides of it",
            "notes": __doc__.split("\n\n")[1] if __doc__ else "",
            "command": ["tcpinc-analyze", "record", "http", "--middlebox", kind, "--seed",
                        str(seed)],
            "near_a": "first", "connections": [rec]}


def middlebox_catalog_entry(kind: str) -> dict:
    """The samples/pairs/pairs.json entry of a recorded pair."""
    name = f"recorded-{kind}"
    return {"name": name, "origin": "recorded", "seed": 1, "first": f"{name}.first.pcap",
            "second": f"{name}.second.pcap", "keylog": f"{name}.keys",
            "expected": f"{name}.compare.json",
            "summary": f"real Linux {kind} middlebox, captured on both sides",
            "notes": f"sudo tcpinc-analyze record http --middlebox {kind} -o "
                     f"samples/pairs/{name}.first.pcap --second samples/pairs/{name}.second"
                     f".pcap --keylog samples/pairs/{name}.keys --expected "
                     f"samples/pairs/{name}.compare.json --seed 1",
            "sha256": None}
