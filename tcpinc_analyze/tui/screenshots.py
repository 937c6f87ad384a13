"""``python -m tcpinc_analyze.tui.screenshots``: write docs/tui-main.svg and
docs/tui-follow.svg (Textual's SVG export, 120x40) for the README.

The main screenshot shows A's first frame (packet 8 of ``x25519-chacha20.pcap``) with
the detail tree's cursor on it: frame header, frame-ID offset, generation, nonce, tag,
and the decrypted plaintext with its FINp flag.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .app import TcpincApp
from .detail import DetailTree
from .packets import PacketList

ROOT = Path(__file__).resolve().parents[2]
PACKET = 8


async def _shots(out: Path) -> None:
    samples = ROOT / "samples"
    app = TcpincApp(str(samples / "x25519-chacha20.pcap"), [str(samples / "x25519-chacha20.keys")])
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if app.analysis and app.analysis.done and app.current_detail is not None:
                break
        app.clear_notifications()  # the samples' key logs are 0644: a warning toast
        packets = app.query_one(PacketList)
        packets.focus()
        packets.select_packet(PACKET)
        await pilot.pause(0.2)
        tree = app.query_one(DetailTree)
        frame = next((n for n in _walk(tree.root)
                      if n.data is not None and n.data.abbrev == "tcpcrypt.frame"), None)
        if frame is not None:
            tree.focus()
            tree.move_cursor(frame)
            await pilot.pause(0.1)
            tree.scroll_to(y=max(0, frame.line - 1), animate=False)
            await pilot.pause(0.2)
        app.save_screenshot("tui-main.svg", str(out))
        await pilot.press("f")
        await pilot.pause(0.2)
        app.save_screenshot("tui-follow.svg", str(out))


def _walk(node: object) -> list:
    out = []
    stack = list(reversed(node.children))  # type: ignore[attr-defined]
    while stack:
        item = stack.pop()
        out.append(item)
        stack.extend(reversed(item.children))
    return out


def main() -> int:
    """Write the two screenshots."""
    out = ROOT / "docs"
    out.mkdir(exist_ok=True)
    asyncio.run(_shots(out))
    print(f"wrote {out / 'tui-main.svg'} and {out / 'tui-follow.svg'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
