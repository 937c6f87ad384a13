"""The command line as a contract: options that would do nothing are errors, errors show
the subcommand's own usage, --version, help for every argument in one metavar style, and
the exit codes in --help."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from tcpinc_analyze import __version__
from tcpinc_analyze.cli import EXIT_NOTHING, EXIT_USAGE, build_parser, main

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CAPTURE = str(SAMPLES / "x25519-chacha20.pcap")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command parser by its command line, the top level as ''."""
    out = {"": parser}
    todo = [("", parser)]
    while todo:
        name, current = todo.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    full = f"{name} {sub}".strip()
                    out[full] = child
                    todo.append((full, child))
    return out


PARSERS = _subparsers(build_parser())


def test_extra_arguments_show_the_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    # (several captures are a feature of analyze: see tests/test_scale.py)
    assert main(["verify", CAPTURE, "b.pcap", "--bogus"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "usage: tcpinc-analyze verify" in err
    assert "unrecognized arguments: --bogus" in err
    assert main(["wireshark", "export", "x.lua", "extra"]) == EXIT_USAGE
    assert "usage: tcpinc-analyze wireshark export" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "hint"), [
    (["analyze", "-r", CAPTURE], "give the capture as an argument"),
    (["verify", CAPTURE, "-k", "x.keys"], "--keylog KEYLOG"),
])
def test_habits_from_other_tools_get_a_hint(args: list[str], hint: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"usage: tcpinc-analyze {args[0]}" in err and hint in err


@pytest.mark.parametrize(("args", "message"), [
    (["analyze", CAPTURE, "--hex"], "--hex only applies to --follow"),
    (["analyze", CAPTURE, "--follow", "0", "--format", "json"], "use one of --follow"),
    (["analyze", CAPTURE, "--follow", "0", "--format", "jsonl"], "use one of --follow"),
    (["analyze", CAPTURE, "--follow", "0", "--details"], "--details does not apply"),
    (["analyze", CAPTURE, "--follow", "0", "--all-findings"], "--all-findings does not"),
    (["analyze", CAPTURE, "--follow", "-1"], "ids start at 0"),
    (["analyze", CAPTURE, "--all-findings", "--format", "jsonl"], "lists every finding"),
    (["analyze", CAPTURE, "--resume-depth", "-2"], "is negative"),
    (["conformance", CAPTURE, "--all-rules", "--format", "json"], "lists every rule"),
    (["decrypt", CAPTURE], "needs -o DIR and/or --pcap-out"),
    (["decrypt", "-", "--pcap-out", "x.pcap"], "give a file, not -"),
    (["synth"], "name a scenario"),
    (["synth", "--list", "--catalog", "d"], "cannot be combined"),
    (["synth", "--catalog", "d", "--seed", "3"], "--seed only apply to a named scenario"),
    (["synth", "x25519-chacha20"], "needs -o/--output FILE"),
    (["record", "http", "-o", "x.pcap", "--keylog", "x.keys", "--timeout", "0"],
     "not a positive number of seconds"),
])
def test_options_that_would_do_nothing_are_errors(args: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err, err
    assert f"usage: tcpinc-analyze {args[0]}" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tcpinc-analyze {__version__}"


def test_no_command_prints_the_usage_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and "usage: tcpinc-analyze" in captured.err


@pytest.mark.parametrize("command", sorted(PARSERS), ids=lambda c: c or "top")
def test_every_argument_has_help_in_one_metavar_style(command: str) -> None:
    """Each argument says what it is for; every value is named in capitals (CAPTURE,
    KEYLOG, FILE, DIR, N, ID, SECONDS ...)."""
    parser = PARSERS[command]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction |
                      argparse._VersionAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{command}: {name} has no help"
        if action.nargs == 0 or isinstance(action, argparse.BooleanOptionalAction):
            continue
        metavar = action.metavar or (action.dest.upper() if action.option_strings else None)
        if action.choices and action.metavar is None:
            continue  # shown as {a,b,c}
        assert metavar and re.fullmatch(r"[A-Z][A-Z0-9_]*", metavar), (command, name, metavar)
        assert action.metavar is not None, f"{command}: {name} relies on argparse's default"
        if action.dest == "capture":
            assert metavar == "CAPTURE", (command, metavar)
        if "--keylog" in action.option_strings and command not in ("synth", "record"):
            assert metavar == "KEYLOG", (command, metavar)  # a key log to read


@pytest.mark.parametrize("command", sorted(PARSERS), ids=lambda c: c or "top")
def test_help_lists_the_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command.split(), "--help"]) == 0
    out = capsys.readouterr().out
    assert "exit status:" in out
    assert re.search(r"^\s+0\s+done", out, re.M)
    assert re.search(r"^\s+2\s+usage error or unusable input", out, re.M)


def test_help_names_what_each_code_means_per_command(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    main(["verify", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"^\s+1\s+verification failed", out, re.M)
    main(["extract-secrets", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"^\s+3\s+nothing to output: the capture has no key log", out, re.M)
    assert not re.search(r"^\s+1\s", out, re.M)  # extract-secrets never uses 1


def test_extract_secrets_without_a_block_is_not_a_verification_failure(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract-secrets", CAPTURE]) == EXIT_NOTHING
    captured = capsys.readouterr()
    assert captured.out == "" and "no key log embedded" in captured.err
