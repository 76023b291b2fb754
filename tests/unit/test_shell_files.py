"""Shell completion and the man page: generated from the argument parser,
committed under share/, and valid for the programs that read them."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cloudfs.cli import completion, sharefiles
from cloudfs.cli.main import SUBCOMMANDS, build_parser

REPO = Path(__file__).resolve().parents[2]
SHARE = REPO / "share"
BASH_COMPLETION = SHARE / "bash-completion/completions/cloudfs"
ZSH_COMPLETION = SHARE / "zsh/site-functions/_cloudfs"
MAN_PAGE = SHARE / "man/man1/cloudfs.1"


def test_share_files_match_the_parser():
    behind = sharefiles.stale(SHARE)
    assert not behind, f"out of date (run: make share): {[str(p) for p in behind]}"


def test_completion_command_prints_the_script():
    result = subprocess.run([sys.executable, "-m", "cloudfs", "completion", "bash"], capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout == completion.script("bash") == BASH_COMPLETION.read_text()


def bash_complete(line: str) -> list[str]:
    """What bash offers for ``line`` (ending where TAB is pressed), with the installed script loaded."""
    words = line.split(" ")
    program = f"""
        source {BASH_COMPLETION}
        COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}
        COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}
        complete -p cloudfs >/dev/null || exit 3
        _shtab_cloudfs cloudfs {words[-1]!r} {words[-2]!r}
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_bash_completion_is_valid_and_completes_commands_and_options():
    subprocess.run(["bash", "-n", str(BASH_COMPLETION)], check=True, timeout=30)
    assert sorted(bash_complete("cloudfs ")) == sorted(SUBCOMMANDS)
    assert sorted(bash_complete("cloudfs mount --ca")) == ["--cache-dir", "--cache-size"]
    assert bash_complete("cloudfs completion ") == ["bash", "zsh"]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_completion_is_valid_and_completes_commands_and_options():
    subprocess.run(["zsh", "-n", str(ZSH_COMPLETION)], check=True, timeout=30)
    assert ZSH_COMPLETION.read_text().startswith("#compdef cloudfs")  # how compinit finds it in $fpath
    # zsh's completion system needs a terminal; stand in for the two functions the script calls
    program = f"""
        _arguments() {{ :; }}; compdef() {{ :; }}
        _describe() {{ print -rl -- "${{(@P)2}}"; }}
        source {ZSH_COMPLETION}
        _shtab_cloudfs_commands; print -- ---; print -rl -- $_shtab_cloudfs_mount_options
    """
    result = subprocess.run(["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    commands, _, mount_options = result.stdout.partition("---\n")
    assert sorted(line.split(":")[0] for line in commands.splitlines()) == sorted(SUBCOMMANDS)
    assert any(line.startswith('--cache-dir[') for line in mount_options.splitlines()), mount_options


def test_path_arguments_complete_as_files_or_directories():
    text = BASH_COMPLETION.read_text()
    assert "_shtab_cloudfs_umount_pos_0_COMPGEN=_shtab_compgen_dirs" in text
    assert "_shtab_cloudfs_mount___password_file_COMPGEN=_shtab_compgen_files" in text


@pytest.mark.skipif(shutil.which("man") is None, reason="man not installed")
def test_man_page_renders_every_command_and_option():
    result = subprocess.run(["man", "--warnings", "-l", str(MAN_PAGE)], capture_output=True, text=True,
                            timeout=60, env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    page = result.stdout
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        assert f"cloudfs {name}" in page
        for action in sub._actions:
            if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
                for option in action.option_strings:
                    assert option in page, (name, option)
