"""A KooDrive enterprise app key (AppId + AppSecret) named by the config file.

A remote of ``config.toml`` may carry ``app_key_file`` (a TOML file with
``app_id``, ``app_secret`` and optionally ``user_id``), or ``app_id`` and
``app_secret`` themselves (the config file must then be readable by its owner
alone).  The environment (``CLOUDFS_KOODRIVE_APP_KEY_FILE``, or
``CLOUDFS_KOODRIVE_APP_ID`` and ``CLOUDFS_KOODRIVE_APP_SECRET``) wins over it:
it is set for one command.  With an app key (or a pasted token) at hand, a
login needs no password.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from cloudfs.config import APP_KEY_KEYS


def take_app_key(remote: MutableMapping[str, object]) -> None:
    """Hand the remote's app key (removed from ``remote``) to the KooDrive login."""
    values = {key: str(remote.pop(key)) for key in APP_KEY_KEYS if key in remote}
    if values:
        from cloudfs.client.koodrive.login import configure_app_key

        configure_app_key(**values)


def needs_no_password() -> bool:
    """Whether an app key or a pasted token will log in (no password to ask for)."""
    from cloudfs.client.koodrive.login import needs_no_password as standing

    return standing()
