"""Installing the project as a user would: a wheel in a fresh virtual environment, run
from a folder outside the source tree, must find its field spec and Lua dissector as
package data (an editable install hides a missing one: it reads the checkout)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "x25519-chacha20"


def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout to copy the source tree from")
    return [name for name in out.decode().split("\0") if name]


def _copy_source(dest: Path) -> None:
    """The files a fresh clone has (no build/, no .egg-info, no .venv)."""
    for name in _tracked_files():
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _dependency_paths() -> list[str]:
    """Where this interpreter finds the runtime dependencies: given to the new
    environment as plain path lines of a .pth file, so their own .pth files (an editable
    install of this project among them) are not processed."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
             *site.getsitepackages()}
    return sorted(p for p in paths if Path(p).is_dir())


def test_wheel_install_runs_outside_the_source_tree(tmp_path: Path) -> None:
    src, dist, venv, work = (tmp_path / n for n in ("src", "dist", "venv", "elsewhere"))
    for d in (src, dist, work):
        d.mkdir()
    _copy_source(src)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "TCPINC_FIELD_SPEC", "TCPCRYPT_KEYLOGFILE")}
    env["HOME"] = str(tmp_path)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "--disable-pip-version-check", "-w", str(dist),
                    str(src)], check=True, env=env, cwd=tmp_path)
    wheel, = dist.glob("tcpinc_analyze-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "tcpinc_analyze/dissectors/fields.json" in names
    assert "tcpinc_analyze/lua/tcpinc.lua" in names
    for init in sorted(ROOT.glob("tcpinc_analyze/**/__init__.py")):
        assert str(init.relative_to(ROOT)) in names, f"{init} missing from the wheel"

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "outer-dependencies.pth").write_text("\n".join(_dependency_paths()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", str(wheel)], check=True, env=env)

    for name in (f"{SAMPLE}.pcap", f"{SAMPLE}.keys"):
        shutil.copy(ROOT / "samples" / name, work / name)
    where = subprocess.run([str(python), "-c", "import tcpinc_analyze; "
                            "print(tcpinc_analyze.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(purelib), f"imported from {where}, not the installed wheel"

    cli = venv / "bin" / "tcpinc-analyze"
    helped = subprocess.run([str(cli), "--help"], cwd=work, env=env, capture_output=True,
                            text=True)
    assert helped.returncode == 0, helped.stderr
    assert "analyze" in helped.stdout and not helped.stderr
    ran = subprocess.run([str(cli), "analyze", f"{SAMPLE}.pcap", "--keylog", f"{SAMPLE}.keys",
                          "--format", "json"], cwd=work, env=env, capture_output=True,
                         text=True)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    (conn,) = json.loads(ran.stdout)
    assert conn["eno"]["status"] == "negotiated"
    assert conn["tcpcrypt"]["decrypted"]["ba"]["failed"] == 0
    assert conn["tcpcrypt"]["decrypted"]["ba"]["ok"] > 0
    exported = subprocess.run([str(cli), "wireshark", "export", "plugin.lua"], cwd=work,
                              env=env, capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    assert (work / "plugin.lua").read_bytes() == (ROOT / "lua" / "tcpinc.lua").read_bytes()


def test_readme_commands_need_no_sudo_and_use_a_venv() -> None:
    """A fresh Debian 12 machine, as root: no sudo, and pip only inside a virtual
    environment (PEP 668); .ci/run runs the README's test command the same way."""
    readme = (ROOT / "README.md").read_text()
    blocks = readme.split("```sh\n")[1:3]
    commands = [block.split("```", 1)[0] for block in blocks]
    setup, ci = commands
    assert "sudo" not in setup and "sudo" not in ci
    assert "python3 -m venv .venv" in setup
    for part in setup.split("&&"):
        if "pip install" in part:
            assert part.strip().startswith(".venv/bin/pip"), part
    assert ".venv/bin/tcpinc-analyze" in setup
    run = (ROOT / ".ci" / "run").read_text()
    code = "\n".join(line for line in run.splitlines() if not line.lstrip().startswith("#"))
    assert "python3 -m venv .venv" in code and "sudo" not in code
    assert ".venv/bin/python -m pytest" in run and ".venv/bin/python -m pytest" in readme
