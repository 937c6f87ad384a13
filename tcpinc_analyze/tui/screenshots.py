"""``python -m tcpinc_analyze.tui.screenshots``: write docs/tui-main.svg and
docs/tui-follow.svg (Textual's SVG export) for the README."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .app import TcpincApp

ROOT = Path(__file__).resolve().parents[2]


async def _shots(out: Path) -> None:
    samples = ROOT / "samples"
    app = TcpincApp(str(samples / "x25519-chacha20.pcap"), [str(samples / "x25519-chacha20.keys")])
    async with app.run_test(size=(160, 50)) as pilot:
        for _ in range(200):
            await pilot.pause(0.05)
            if app.analysis and app.analysis.done and app.current_detail is not None:
                break
        await pilot.press("tab", "j", "j", "j")
        await pilot.pause(0.2)
        app.save_screenshot("tui-main.svg", str(out))
        await pilot.press("f")
        await pilot.pause(0.2)
        app.save_screenshot("tui-follow.svg", str(out))


def main() -> int:
    """Write the two screenshots."""
    out = ROOT / "docs"
    out.mkdir(exist_ok=True)
    asyncio.run(_shots(out))
    print(f"wrote {out / 'tui-main.svg'} and {out / 'tui-follow.svg'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
