import pytest

from cloudfs.config import ConfigError, MountSettings, load_remote, parse_size


def test_config_parse_size():
    assert parse_size("4096") == 4096
    assert parse_size("512M") == 512 << 20
    assert parse_size("10GiB") == 10 << 30
    assert parse_size("1.5g") == 3 << 29
    with pytest.raises(ValueError):
        parse_size("ten")


def test_config_remote_is_loaded_and_validated(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        '[remotes.work]\nurl = "https://drive.example.com"\nuser = "alice@example.com"\n'
        'cache_size = "10G"\nmetadata_ttl = 30\numask = "027"\nfsync = "local"\nmountpoint = "~/Work"\n'
    )
    remote = load_remote("work", path)
    assert remote["url"] == "https://drive.example.com"
    assert remote["cache_size"] == 10 << 30 and remote["metadata_ttl_s"] == 30.0
    assert remote["umask"] == 0o027 and remote["fsync"] == "local"
    settings = MountSettings(**remote)
    assert settings.cache_dir is not None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[remotes.work]\nurl = "x"\ncolour = "red"\n', "remotes.work: unknown key 'colour'"),
        ('[remotes.work]\nurl = "x"\nfsync = "sometimes"\n', "remotes.work.fsync"),
        ('[remotes.work]\nurl = "x"\nmetadata_ttl = "soon"\n', "remotes.work.metadata_ttl"),
        ('[remotes.work]\nuser = "a"\n', "'url' is required"),
        ('[remotes.other]\nurl = "x"\n', "no remote named 'work'"),
        ('[remotes.work\n', "config.toml"),
        ('[remotes.work]\nurl = "x"\napp_id = "a"\n', "app_id and app_secret go together"),
    ],
)
def test_config_errors_name_the_file_and_key(tmp_path, body, message):
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_remote("work", path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_config_readme_example_is_valid(tmp_path):
    # the README's example config must load as written (documentation that cannot rot)
    from pathlib import Path
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "config.toml"
    path.write_text(example)
    remote = load_remote("work", path)
    assert remote["url"] == "https://drive.example.com"
    assert remote["cache_size"] == 20 << 30 and remote["umask"] == 0o22 and remote["fsync"] == "remote"
    MountSettings(**{k: v for k, v in remote.items() if k != "password_file"})
