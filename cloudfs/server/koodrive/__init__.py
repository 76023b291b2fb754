"""``cloudfs server --dialect koodrive``: a Huawei KooDrive emulator.

Serves KooDrive's public file API (``/koodrive/ose/v1``) over the bundled
servers' SQLite store and blob files; :func:`.app.build_koodrive_app` builds
it.  What it serves, and every assumption it makes where the reference is
silent, is in docs/koodrive-emulator.md.
"""
