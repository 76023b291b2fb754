"""A/B of small new files through mounts of two cloudfs source trees, in one
environment, run by run: the server requests each small file costs, and a
``tar xf`` of many small files.

    .venv/bin/python bench/small_files_ab.py --a /path/to/main --b . [--dialect koodrive]
        [--files 2000] [--folders 20] [--reps 3]

* Requests (counted by the bundled server: a fault rule that matches every
  request and injects nothing): a mount writes one 4 KiB file into a folder
  it made (new file), then writes it again (replace), each followed by an
  ``fsync``; the client alone uploads a new 4 KiB file, then a new version
  of it (``Client.upload`` run from the tree, in a process of its own).
* ``tar xf`` of ``--files`` files of 4 KiB in ``--folders`` folders into a
  fresh mount: until tar returns, and until ``cloudfs umount`` returns (every
  file on the server), as files per second, and the requests per file.

Each mount runs ``python -m cloudfs`` from its tree; the bundled server is
this checkout's.  The machine is shared and noisy: A's and B's runs
alternate, ratios are taken pair by pair, and medians are printed.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from harness import Mount, ab_arguments, environment, importing_tree

KiB = 1024

CLIENT_COUNT = """
import os, sys, trio
from cloudfs.client.api import CloudreveClient

async def main(url, email, password, source, size, folder):
    client = await CloudreveClient.connect(url, email=email, password=password)
    async with client:
        await client.mkdir(folder)
        with open(source, "wb") as fp:
            fp.write(os.urandom(size))
        print("ready", flush=True)
        sys.stdin.readline()
        entry = await client.upload(folder + "/f.bin", source)
        print("new", flush=True)
        sys.stdin.readline()
        with open(source, "wb") as fp:
            fp.write(os.urandom(size))
        await client.upload(folder + "/f.bin", source, replace=entry)
        print("replace", flush=True)

trio.run(main, *sys.argv[1:5], int(sys.argv[5]), sys.argv[6])
"""


def make_tar(path: Path, count: int, folders: int) -> None:
    per_folder = -(-count // folders)
    with tarfile.open(path, "w") as tar:
        for i in range(count):
            info = tarfile.TarInfo(f"d{i // per_folder:02d}/f{i:05d}.bin")
            info.size = 4 * KiB
            tar.addfile(info, io.BytesIO(os.urandom(4 * KiB)))


def requests(server) -> int:  # type: ignore[no-untyped-def]
    return int(server.faults.stats()["matched"])


def write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def mount_counts(server, base: Path, name: str, tree: Path) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Requests of one new 4 KiB file and of one replace of it, through a mount."""
    with importing_tree(str(tree)):
        mount = Mount(server, base / f"mnt-{name}", base / f"mcache-{name}", options="delete=permanent")
        mount.wipe_cache()
        mount.mount()
        try:
            folder = mount.path / f"count-{name}"
            folder.mkdir()
            time.sleep(1.0)  # the mount's own start-up requests are over
            before = requests(server)
            write_synced(folder / "f.bin", os.urandom(4 * KiB))
            new = requests(server) - before
            before = requests(server)
            write_synced(folder / "f.bin", os.urandom(4 * KiB))
            replace = requests(server) - before
        finally:
            mount.umount()
    return {"new": new, "replace": replace}


def client_counts(server, base: Path, name: str, tree: Path) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Requests of ``Client.upload`` of a new 4 KiB file and of a new version of it."""
    with importing_tree(str(tree)):
        proc = subprocess.Popen([sys.executable, "-c", CLIENT_COUNT, server.url, server.email, server.password,
                                 str(base / "client-source.bin"), str(4 * KiB), f"/client-{name}"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    counts: dict[str, int] = {}
    try:
        assert proc.stdout.readline().strip() == "ready"
        for step in ("new", "replace"):
            before = requests(server)
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == step
            counts[step] = requests(server) - before
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    return counts


def untar_run(server, base: Path, archive: Path, files: int, name: str, tree: Path,  # type: ignore[no-untyped-def]
              rep: int) -> dict[str, float]:
    with importing_tree(str(tree)):
        mount = Mount(server, base / f"mnt-{name}", base / f"mcache-{name}", options="delete=permanent")
        mount.wipe_cache()
        mount.mount()
        target = mount.path / f"untar-{name}-{rep}"
        target.mkdir()
        before = requests(server)
        start = time.perf_counter()
        subprocess.run(["tar", "xf", str(archive), "-C", str(target)], check=True)
        returned = time.perf_counter() - start
        mount.umount()
        on_server = time.perf_counter() - start
    return {"returns": files / returned, "on_server": files / on_server,
            "requests": (requests(server) - before) / files}


def main() -> None:
    parser = ab_arguments(reps=3, dialect="koodrive")
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--folders", type=int, default=20)
    args = parser.parse_args()
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with environment(faults=True, capacity=4 << 30, dialect=args.dialect) as (server, base):
        server.faults.set(latency_s=0.0)  # counts every request, injects nothing
        counts = {name: {"mount": mount_counts(server, base, name, tree), "client": client_counts(server, base, name, tree)}
                  for name, tree in trees.items()}
        archive = base / "small.tar"
        make_tar(archive, args.files, args.folders)
        for rep in range(args.reps):
            for name, tree in trees.items():
                runs[name].append(untar_run(server, base, archive, args.files, name, tree, rep))
            print(f"run {rep + 1}: " + ", ".join(
                f"{n} tar returns {r[-1]['returns']:.0f} files/s, on the server {r[-1]['on_server']:.0f} files/s, "
                f"{r[-1]['requests']:.2f} requests/file" for n, r in runs.items()), flush=True)
    print(f"\n== small files, {args.dialect}; A = {trees['A']}, B = {trees['B']}")
    for name in trees:
        c = counts[name]
        print(f"  {name}: requests per 4 KiB file: mount new {c['mount']['new']}, replace {c['mount']['replace']}; "
              f"client new {c['client']['new']}, replace {c['client']['replace']}")
    print(f"== tar xf {args.files} x 4 KiB into {args.folders} folders, medians of {args.reps}, interleaved")
    for name, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("returns", "on_server", "requests")}
        print(f"  {name}: tar returns {med['returns']:6.0f} files/s, all on the server {med['on_server']:6.0f} "
              f"files/s, {med['requests']:.2f} requests per file")
    for key, what in (("returns", "tar returns"), ("on_server", "all on the server")):
        pairs = [b[key] / a[key] for a, b in zip(runs["A"], runs["B"])]
        print(f"  B / A files/s, {what}, pair by pair: median {statistics.median(pairs):.2f} "
              f"({', '.join(f'{p:.2f}' for p in pairs)})")


if __name__ == "__main__":
    main()
