import argparse
from pathlib import Path

import pytest

from cloudfs.cli import mount
from cloudfs.cli.fstab import HelperError, translate


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    mount.add_arguments(parser)
    args = parser.parse_args(list(argv))
    args.argv = list(argv)
    return args


def test_fstab_helper_translates_options():
    out = translate(["https://d.example.com", "/mnt/drive", "-o",
                     "user=alice@example.com,_netdev,noauto,x-systemd.automount,rw,ro,uid=1000,umask=027"])
    assert out == ["mount", "https://d.example.com", "/mnt/drive", "--user", "alice@example.com",
                   "--read-only", "-o", "uid=1000,umask=027"]
    assert translate(["work", "/mnt/w", "-s", "-n", "-v"]) == ["mount", "work", "/mnt/w", "-v"]
    with pytest.raises(HelperError):
        translate(["only-one"])


def test_mount_options_become_settings(tmp_path):
    args = parse("http://127.0.0.1:1/", str(tmp_path), "-o", "uid=5,umask=077,timeout=7,delete=permanent",
                 "--read-only", "--cache-size", "64M")
    settings, flags = mount.settings_from_args(args)
    assert settings.url == "http://127.0.0.1:1"
    assert settings.uid == 5 and settings.umask == 0o077 and settings.timeout_s == 7.0
    assert settings.read_only and not settings.delete_to_trash and settings.cache_size == 64 << 20
    assert settings.mountpoint == Path(tmp_path).resolve()


def test_mount_events_options(tmp_path):
    settings, _ = mount.settings_from_args(parse("http://127.0.0.1:1/", str(tmp_path)))
    assert settings.events == "auto" and settings.events_ttl_s == 600
    settings, _ = mount.settings_from_args(parse("http://127.0.0.1:1/", str(tmp_path), "-o", "events=off,events_ttl=90"))
    assert settings.events == "off" and settings.events_ttl_s == 90


@pytest.mark.parametrize("option", ["bogus", "uid=abc", "delete=maybe", "colour=red", "events=sometimes"])
def test_mount_bad_options_are_refused(tmp_path, option):
    with pytest.raises(mount.UsageError):
        mount.settings_from_args(parse("http://x", str(tmp_path), "-o", option))


def test_mount_logs_are_named_after_the_whole_mountpoint_path(monkeypatch, tmp_path):
    from cloudfs.cli.logs import mount_log_file

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    a, b = mount_log_file("/home/alice/a/cloud"), mount_log_file("/home/alice/b/cloud/")
    assert a.name == "mount-home-alice-a-cloud.log" and b.name == "mount-home-alice-b-cloud.log"
    assert mount_log_file("/").name == "mount-root.log"


def test_subcommand_positionals_may_follow_options(tmp_path):
    # regression: `cloudfs mount NAME -o X DIR` was refused (DIR "unrecognized")
    from cloudfs.cli.main import build_parser

    args = build_parser().parse_args(["mount", "work", "-o", "ro", str(tmp_path), "--user", "a@b.c"])
    assert (args.url, args.mountpoint, args.options, args.user) == ("work", tmp_path, ["ro"], "a@b.c")
    args = build_parser().parse_args(["mount", "work"])
    assert (args.url, args.mountpoint) == ("work", None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mount", "a", "b", "c"])


def test_umount_loads_neither_the_mount_nor_the_server_stack(tmp_path):
    # `cp big mnt/ && cloudfs umount`: the command starts as the upload runs;
    # importing every subcommand (httpx, the client, the server) cost it 0.3 s of
    # CPU taken from that upload, and as much wall time before it could ask to drain
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cloudfs.cli.main import main\n"
        f"main(['umount', '--quiet', {str(tmp_path)!r}])\n"
        "heavy = ('httpx', 'pyfuse3', 'rich', 'trio', 'cloudfs.client', 'cloudfs.server', 'cloudfs.cli.mount')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_passwords_given_on_purpose(tmp_path, monkeypatch):
    import io

    from cloudfs.cli import password

    assert password.from_stdin(io.StringIO("secret\r\nmore\n")) == "secret"
    for empty in ("", "\n"):
        with pytest.raises(password.PasswordError, match="--password-stdin"):
            password.from_stdin(io.StringIO(empty))
    (tmp_path / "pw").write_text("from-file\n")
    (tmp_path / "empty").write_text("\n")
    assert password.from_file(tmp_path / "pw") == "from-file"
    with pytest.raises(password.PasswordError, match="is empty"):
        password.from_file(tmp_path / "empty")
    with pytest.raises(password.PasswordError, match="cannot read"):
        password.from_file(tmp_path / "missing")
    monkeypatch.setenv("CLOUDFS_PASSWORD", "from-env")
    assert password.explicit(file=tmp_path / "pw") == "from-file"  # the command line before the environment
    assert password.explicit() == "from-env"
    monkeypatch.setenv("CLOUDFS_PASSWORD", "")
    assert password.explicit() is None
