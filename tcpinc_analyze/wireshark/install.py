"""``tcpinc-analyze wireshark install | uninstall | export PATH | status``.

Installs ``lua/tcpinc.lua`` into the personal Lua plugin folder that ``tshark -G folders``
reports ("Personal Lua Plugins"), falling back to ``~/.local/lib/wireshark/plugins``.
Installing is idempotent and never overwrites a different file without ``--force``.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .luagen import LUA_PATH

PLUGIN_NAME = "tcpinc.lua"
FALLBACK_DIR = Path("~/.local/lib/wireshark/plugins")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_PROBE = """
local ok1 = pcall(require, "openssl.cipher")
local ok2 = pcall(require, "openssl.hmac")
local ok3 = pcall(require, "openssl.bignum")
local version = string.gsub(_VERSION, " ", "_")
print("TCPINC_PROBE luaossl=" .. tostring(ok1 and ok2 and ok3) .. " lua=" .. version)
"""


PACKAGED_LUA = Path(__file__).resolve().parents[1] / "lua" / PLUGIN_NAME
"""The dissector installed as package data (a wheel, ``pip install .``, pipx)."""


def plugin_source() -> Path:
    """The dissector shipped with this checkout, else the installed package data."""
    return LUA_PATH if LUA_PATH.is_file() else PACKAGED_LUA


def find_tshark() -> str | None:
    """Path of tshark, if installed."""
    return shutil.which("tshark")


def _run(cmd: list[str], timeout: float = 30.0) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def tshark_version(tshark: str | None = None) -> str | None:
    """``4.0.17`` style version string, or None without tshark."""
    tshark = tshark or find_tshark()
    if not tshark:
        return None
    proc = _run([tshark, "--version"])
    if proc is None or not proc.stdout:
        return None
    first = proc.stdout.splitlines()[0]
    parts = first.split()
    for i, word in enumerate(parts):
        if word == "(Wireshark)" and i + 1 < len(parts):
            return parts[i + 1].rstrip(".")
    return parts[1] if len(parts) > 1 else first


def tshark_folders(tshark: str | None = None) -> dict[str, str]:
    """``tshark -G folders`` as a dict (empty without tshark)."""
    tshark = tshark or find_tshark()
    if not tshark:
        return {}
    proc = _run([tshark, "-G", "folders"])
    out: dict[str, str] = {}
    if proc is None:
        return out
    for line in proc.stdout.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    return out


def plugin_dir() -> Path:
    """The personal Lua plugin folder (tshark's answer, else the standard per-user path)."""
    folder = tshark_folders().get("Personal Lua Plugins")
    if folder:
        return Path(folder).expanduser()
    return FALLBACK_DIR.expanduser()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Status:
    """What ``wireshark status`` reports."""

    tshark: str | None
    version: str | None
    plugin_dir: Path
    installed: bool
    current: bool
    luaossl: bool | None
    lua_version: str | None

    def lines(self) -> list[str]:
        """Human-readable report."""
        out = [f"tshark: {self.tshark or 'not found'}"
               + (f" (Wireshark {self.version})" if self.version else "")]
        target = self.plugin_dir / PLUGIN_NAME
        if not self.installed:
            out.append(f"plugin: not installed (would go to {target})")
        else:
            out.append(f"plugin: installed at {target} "
                       + ("(current)" if self.current else "(differs from this checkout: "
                          "run 'tcpinc-analyze wireshark install --force' to update)"))
        if self.luaossl is None:
            out.append("lua-luaossl: unknown (needs tshark to check)")
        else:
            out.append("lua-luaossl: " + ("available: frames can be decrypted" if self.luaossl
                                          else "missing: install the Debian package lua-luaossl "
                                          "to decrypt") + (f" [{self.lua_version}]"
                                                           if self.lua_version else ""))
        return out


def probe_luaossl(tshark: str | None = None) -> tuple[bool | None, str | None]:
    """Whether tshark's Lua can load luaossl (runs a tiny probe script)."""
    tshark = tshark or find_tshark()
    if not tshark:
        return None, None
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.lua"
        probe.write_text(_PROBE)
        # -r /dev/null would fail; an empty pcap with a header is enough to start tshark
        empty = Path(tmp) / "empty.pcap"
        empty.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
        proc = _run([tshark, "-X", f"lua_script:{probe}", "-r", str(empty)])
    if proc is None:
        return None, None
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("TCPINC_PROBE"):
            fields = dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
            return fields.get("luaossl") == "true", fields.get("lua")
    return None, None


def status() -> Status:
    """Collect everything ``wireshark status`` shows."""
    tshark = find_tshark()
    folder = plugin_dir()
    target = folder / PLUGIN_NAME
    installed = target.is_file()
    current = installed and filecmp.cmp(target, plugin_source(), shallow=False)
    luaossl, lua_version = probe_luaossl(tshark)
    return Status(tshark, tshark_version(tshark), folder, installed, current, luaossl,
                  lua_version)


def install(force: bool = False, folder: Path | None = None) -> tuple[int, str]:
    """Copy the plugin; returns (exit code, message)."""
    source = plugin_source()
    if not source.is_file():
        return EXIT_FAILED, f"the dissector {source} is missing from this installation"
    folder = folder or plugin_dir()
    target = folder / PLUGIN_NAME
    if target.exists():
        if target.is_file() and filecmp.cmp(target, source, shallow=False):
            return EXIT_OK, f"already installed and current: {target}"
        if not force:
            return EXIT_FAILED, (f"{target} exists and differs from this version of the plugin "
                                 "(sha256 " + (_sha(target)[:12] if target.is_file() else "?")
                                 + "); use --force to overwrite it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{PLUGIN_NAME}.tmp{os.getpid()}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        return EXIT_FAILED, f"cannot install into {folder}: {exc}"
    return EXIT_OK, f"installed {target}"


def _prune_empty(folder: Path) -> list[Path]:
    """Remove the plugin folder if uninstalling left it empty, and its empty parents up
    to the Wireshark folder that holds it (``~/.local/lib/wireshark/plugins`` ->
    ``plugins``, ``wireshark``): install creates them, uninstall should not leave them.
    Never the home folder, never a folder with anything in it."""
    chain = [folder]
    while (chain[-1].name.lower() != "wireshark" and len(chain) < 3
           and chain[-1].parent != chain[-1]):
        chain.append(chain[-1].parent)
    if chain[-1].name.lower() != "wireshark":
        chain = [folder]
    removed = []
    home = Path.home().resolve()
    for path in chain:
        try:
            if path.resolve() in (home, Path(path.anchor)):
                break
            path.rmdir()
        except OSError:
            break
        removed.append(path)
    return removed


def uninstall(force: bool = False, folder: Path | None = None) -> tuple[int, str]:
    """Remove the plugin (a modified copy is kept unless ``force``) and the plugin
    folders it leaves empty."""
    folder = folder or plugin_dir()
    target = folder / PLUGIN_NAME
    if not target.exists():
        return EXIT_OK, f"not installed: {target}"
    if not force and not filecmp.cmp(target, plugin_source(), shallow=False):
        return EXIT_FAILED, (f"{target} differs from this version of the plugin (edited, or "
                             "another version); use --force to remove it anyway")
    try:
        target.unlink()
    except OSError as exc:
        return EXIT_FAILED, f"cannot remove {target}: {exc}"
    removed = _prune_empty(folder)
    return EXIT_OK, f"removed {target}" + ("".join(f"\nremoved empty folder {p}"
                                                   for p in removed))


def export(dest: Path | str, force: bool = False) -> tuple[int, str]:
    """Write the plugin to a file, or into a folder: an existing one, or a new one when
    the path ends with a slash (``export NEWDIR/`` writes ``NEWDIR/tcpinc.lua``)."""
    text = str(dest)
    path = Path(text).expanduser()
    as_dir = path.is_dir() or text.endswith(("/", os.sep))
    target = path / PLUGIN_NAME if as_dir else path
    source = plugin_source()
    if target.exists() and target.resolve() == source.resolve():
        return EXIT_FAILED, f"{target} is the plugin itself; choose another path"
    if target.is_dir():
        return EXIT_FAILED, f"{target} is a folder"
    if target.exists() and not filecmp.cmp(target, source, shallow=False) and not force:
        return EXIT_FAILED, f"{target} exists and differs; use --force to overwrite it"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        return EXIT_FAILED, f"cannot write {target}: {exc}"
    return EXIT_OK, f"wrote {target}"


def cmd_wireshark(args: argparse.Namespace) -> int:
    """Dispatch the ``wireshark`` subcommand's actions."""
    action = args.wireshark_action
    if action == "install":
        code, message = install(force=args.force,
                                folder=Path(args.dir).expanduser() if args.dir else None)
    elif action == "uninstall":
        code, message = uninstall(force=args.force,
                                  folder=Path(args.dir).expanduser() if args.dir else None)
    elif action == "export":
        code, message = export(args.path, force=args.force)
    elif action == "status":
        st = status()
        print("\n".join(st.lines()))
        return EXIT_OK if st.tshark else EXIT_FAILED
    else:
        print("usage: tcpinc-analyze wireshark {install,uninstall,export,status}",
              file=sys.stderr)
        return EXIT_USAGE
    print(message, file=sys.stderr)  # a message, not data: stdout stays clean
    return code


def add_subparser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``wireshark`` on a subparsers object (``tcpinc_analyze.cli`` calls this)."""
    ws = subparsers.add_parser(
        "wireshark", help="install the Wireshark/tshark dissector (Lua plugin)",
        description="Install, remove, export or check the TCP-ENO/tcpcrypt Lua dissector.")
    actions = ws.add_subparsers(dest="wireshark_action", metavar="ACTION")
    inst = actions.add_parser("install", help="copy the plugin into the personal Lua plugin "
                              "folder (tshark -G folders)")
    inst.add_argument("--force", action="store_true", help="overwrite a different file")
    inst.add_argument("--dir", metavar="DIR", help="plugin folder to use instead of tshark's")
    uninst = actions.add_parser("uninstall", help="remove the installed plugin")
    uninst.add_argument("--force", action="store_true", help="remove even a modified copy")
    uninst.add_argument("--dir", metavar="DIR", help="plugin folder to use instead of tshark's")
    exp = actions.add_parser("export", help="write the plugin to PATH (a file, or a folder: "
                             "an existing one or PATH/ to create it)",
                             description="Write the Lua plugin (tcpinc.lua) to a file or "
                             "into a folder, e.g. to copy it to another machine.")
    exp.add_argument("path", metavar="PATH",
                     help="file to write, or a folder (existing, or PATH/ to create it) to "
                     "write tcpinc.lua into")
    exp.add_argument("--force", action="store_true", help="overwrite a different file")
    actions.add_parser("status", help="tshark version, plugin installed/current, lua-luaossl")
    ws.set_defaults(func=cmd_wireshark, wireshark_action=None)
    return ws


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m tcpinc_analyze.wireshark.install ACTION``."""
    parser = argparse.ArgumentParser(prog="tcpinc-analyze")
    add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["wireshark", *(argv or [])])
    return cmd_wireshark(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
