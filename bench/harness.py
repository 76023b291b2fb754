"""Shared pieces of the mount benchmarks: a bundled server in a temp dir, a
real ``cloudfs mount`` of it, timing, and the medians-and-ratios report.

Machines are shared and noisy: every measurement is repeated, and only
medians and ratios of measurements taken in the same run are reported.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudfs.server.testing import RunningServer, start_server  # noqa: E402

MiB = 1 << 20
CLOUDFS = [sys.executable, "-m", "cloudfs"]


def drop_caches() -> None:
    """Drop the kernel's page cache (root only), so "cold" means cold on both sides."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fp:
            fp.write("3")
    except OSError:
        pass


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


@dataclass
class Mount:
    server: RunningServer
    path: Path
    cache_dir: Path
    options: str = ""

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        args = ["mount", self.server.url, str(self.path), "--user", self.server.email,
                "--cache-dir", str(self.cache_dir)]
        if self.options:
            args += ["-o", self.options]
        env = dict(os.environ, CLOUDFS_PASSWORD=self.server.password)
        subprocess.run([*CLOUDFS, *args], env=env, check=True)

    def umount(self) -> None:
        subprocess.run([*CLOUDFS, "umount", "--quiet", str(self.path)], check=True)

    def wipe_cache(self) -> None:
        shutil.rmtree(self.cache_dir, ignore_errors=True)


@contextmanager
def environment(faults: bool = False, **server_args: object) -> Iterator[tuple[RunningServer, Path]]:
    """A temp dir holding the server's data, caches and XDG dirs of the run
    (``faults``: the server counts requests, see ``RunningServer.faults``).
    A KooDrive emulator answers no ``rapidUpload``: every run uploads the
    same content, which it would otherwise know after the first."""
    if server_args.get("dialect") == "koodrive":
        server_args["extra_args"] = [*server_args.get("extra_args", ()), "--kd-switch", "rapid_upload=false"]
    with tempfile.TemporaryDirectory(prefix="cloudfs-bench-") as tmp:
        base = Path(tmp)
        for key, sub in (("XDG_STATE_HOME", "state"), ("XDG_CACHE_HOME", "cache"),
                         ("XDG_CONFIG_HOME", "config"), ("XDG_RUNTIME_DIR", "run")):
            (base / sub).mkdir(mode=0o700)
            os.environ[key] = str(base / sub)
        server = start_server(base / "server", faults=faults, **server_args)  # type: ignore[arg-type]
        try:
            yield server, base
        finally:
            server.stop()


@contextmanager
def importing_tree(tree: str) -> Iterator[None]:
    """Processes started meanwhile (``python -m cloudfs...``) import cloudfs from
    ``tree``: ``python -m`` puts the working directory first on sys.path, ahead of PYTHONPATH."""
    old, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    os.environ["PYTHONPATH"] = tree
    os.chdir(tree)
    try:
        yield
    finally:
        os.chdir(cwd)
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old


def start_tree_server(tree: str, data_dir: Path, **server_args: object) -> RunningServer:
    """A bundled server that imports cloudfs from ``tree``."""
    if server_args.get("dialect") == "koodrive":
        server_args["extra_args"] = [*server_args.get("extra_args", ()), "--kd-switch", "rapid_upload=false"]
    with importing_tree(tree):
        return start_server(data_dir, faults=False, **server_args)  # type: ignore[arg-type]


@dataclass
class Row:
    """One line of the results table: what was measured, cloudfs's figure,
    the baseline's from the same run, and their ratio against the target."""

    measure: str
    cloudfs: str
    baseline: str = ""
    ratio: float | None = None
    target: str = ""


def print_table(title: str, rows: list[Row]) -> None:
    header = Row("measure", "cloudfs", "baseline", None, "target")
    cells = [(r.measure, r.cloudfs, r.baseline, "ratio" if r is header else ("" if r.ratio is None else f"{r.ratio:.2f}"),
              r.target) for r in [header, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    print(f"\n== {title}")
    for n, c in enumerate(cells):
        print("  " + "  ".join(c[i].ljust(widths[i]) for i in range(5)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def mount_status(mountpoint: Path) -> dict:
    """``cloudfs status --json`` of one mount."""
    import json

    out = subprocess.run([*CLOUDFS, "status", str(mountpoint), "--json"], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout)[0])


def mount_pid(mountpoint: Path) -> int:
    return int(mount_status(mountpoint)["pid"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ab_arguments(*, reps: int, dialect: str = "v4") -> argparse.ArgumentParser:
    """The arguments every A/B script takes: two trees (each mount runs its
    own ``python -m cloudfs``), the repetitions and the dialect."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--a", type=Path, required=True, help="tree A (the baseline), e.g. a checkout of main")
    parser.add_argument("--b", type=Path, required=True, help="tree B (the change)")
    parser.add_argument("--reps", type=int, default=reps)
    parser.add_argument("--dialect", choices=["v4", "v3", "koodrive"], default=dialect)
    return parser


def script_main(title: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                run: Callable[[argparse.Namespace, str], list[Row]]) -> None:
    """A benchmark script's command line: its arguments, a dialect, one table."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parser.add_argument("--dialect", choices=["v4", "v3", "koodrive"], default="v4", help="server dialect (v4)")
    args = parser.parse_args()
    name = "KooDrive" if args.dialect == "koodrive" else f"Cloudreve {args.dialect}"
    print_table(f"{title}, {name}, medians of {args.reps}", run(args, args.dialect))
