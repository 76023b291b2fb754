"""Stress (all slow): standard tools on a real mount when installed, and a
fault soak.  Afterwards the daemon must be alive and every file that was
acknowledged must be byte-identical on the server."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudfs.server.testing import RunningServer, start_server
from tests.mount.conftest import Drive, Remote, mounted

ON_KOODRIVE = True

pytestmark = pytest.mark.slow


@pytest.fixture
def soak_server(dialect: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # a quota far above what the soak writes: its rewrites send old versions to the recycle bin
    # (KooDrive), which counts against the quota, and a full drive is not what the soak is about
    with start_server(tmp_path_factory.mktemp("soak-server"), faults=True, chunk_size=1 << 20, dialect=dialect,
                      capacity=1 << 40) as srv:
        yield srv


@pytest.fixture
def soak_drive(soak_server: RunningServer, tmp_path: Path) -> Iterator[Drive]:
    with mounted(soak_server, tmp_path, "upload_delay=0.2,timeout=5") as d:
        yield d


def run_tool(argv: list[str], cwd: Path, timeout: float) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{argv[0]} failed ({result.returncode}):\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"


def assert_alive(drive: Drive) -> None:
    os.listdir(drive.path)  # ENOTCONN if the daemon died


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed")
@pytest.mark.timeout(1800)
def test_fio_verify(soak_drive: Drive) -> None:
    runtime = os.environ.get("CLOUDFS_FIO_S", "120")
    run_tool(["fio", "--name=cloudfs", f"--directory={soak_drive.path}", "--numjobs=4", "--size=16m",
              "--bs=64k", "--rw=randwrite", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1",
              f"--runtime={runtime}", "--time_based=0", "--ioengine=psync", "--group_reporting"],
             soak_drive.path, timeout=1700)
    assert_alive(soak_drive)


@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng not installed")
@pytest.mark.timeout(1800)
def test_stress_ng_filesystem(soak_drive: Drive) -> None:
    seconds = os.environ.get("CLOUDFS_STRESS_S", "60")
    run_tool(["stress-ng", "--temp-path", str(soak_drive.path), "--hdd", "4", "--hdd-bytes", "8m", "--dir", "4",
              "--rename", "4", "--seek", "4", "--seek-size", "8m", "--verify", "--timeout", f"{seconds}s",
              "--metrics-brief"], soak_drive.path, timeout=1700)
    assert_alive(soak_drive)


@pytest.mark.skipif(shutil.which("dbench") is None, reason="dbench not installed")
@pytest.mark.timeout(1800)
def test_dbench(soak_drive: Drive) -> None:
    seconds = os.environ.get("CLOUDFS_DBENCH_S", "60")
    run_tool(["dbench", "-D", str(soak_drive.path), "-t", seconds, "4"], soak_drive.path, timeout=1700)
    assert_alive(soak_drive)


def tally(server: RunningServer, faults: int, delayed: int) -> tuple[int, int]:
    """Add the server's counters: failures (5xx, dropped connections) and delays."""
    stats = server.faults.stats()
    return (faults + stats["error"] + stats["drop_request"] + stats["drop_response"],
            delayed + stats["latency"])


def failure(op: str, name: str, size: int, error: OSError) -> str:
    errno_name = errno.errorcode.get(error.errno or 0, str(error.errno))
    return f"{time.strftime('%H:%M:%S')} {op} {name} ({size} bytes): {errno_name} {error.strerror}"


def report_failures(failures: list[str], drive: Drive) -> None:
    """Print each failed operation and the mount log's warnings and errors
    (CLOUDFS_TEST_MOUNT_ARGS=-vv for every request), so a failure can be
    traced without re-running the soak."""
    for line in failures:
        print("failed:", line)
    if failures:
        log = drive.log().splitlines()
        print("--- mount log: warnings and errors ---")
        print("\n".join(line for line in log if " WARNING " in line or " ERROR " in line)[-20000:])


@pytest.mark.timeout(7200)
def test_fault_soak(soak_drive: Drive, soak_server: RunningServer) -> None:
    """~10% of requests fail (5xx or a dropped connection), every request is
    a little late; one server restart and one token expiry mid-run: no
    operation fails with an errno, no acknowledged byte is lost.  One
    write in five is fsync'd: the mount keeps the soak's endless rewrites
    local while they go on (uploads wait for a pause), and fsync's uploads
    do not wait, so the uploads go on meeting the faults."""
    duration = float(os.environ.get("CLOUDFS_SOAK_S", "600"))
    rng = random.Random(int(os.environ.get("CLOUDFS_SOAK_SEED", "1")))

    def arm() -> None:  # the rule lives in server memory: re-armed after the restart
        soak_server.faults.set(error_rate=0.05, error_status=503, drop_rate=0.05, drop_after_bytes=50_000,
                               latency_s=0.01, seed=rng.randrange(1 << 30))

    arm()
    acknowledged: dict[str, bytes] = {}
    failures: list[str] = []  # each failed operation: when, what, which errno (printed with the mount log)
    ops = failed = faults = delayed = 0
    started = time.monotonic()
    restarted = expired = False
    while time.monotonic() - started < duration:
        elapsed = time.monotonic() - started
        if not restarted and elapsed > duration / 3:
            faults, delayed = tally(soak_server, faults, delayed)
            soak_server.restart()
            arm()
            restarted = True
        if not expired and elapsed > 2 * duration / 3:
            soak_server.faults.expire_tokens()
            expired = True
        name = f"soak-{rng.randrange(40)}.bin"
        path = soak_drive / name
        ops += 1
        if rng.random() < 0.5 or name not in acknowledged:
            data = rng.randbytes(rng.choice([1, 4096, 300_000, 1_500_000]))
            sync = rng.random() < 0.2
            try:
                with open(path, "wb") as fp:
                    fp.write(data)
                    if sync:
                        fp.flush()
                        os.fsync(fp.fileno())
                acknowledged[name] = data
            except OSError as e:
                failed += 1
                failures.append(failure("write" + (" + fsync" if sync else ""), name, len(data), e))
                acknowledged.pop(name, None)  # its content is uncertain now: not counted
        else:
            try:
                got = path.read_bytes()
            except OSError as e:
                failed += 1
                failures.append(failure("read", name, len(acknowledged[name]), e))
                continue
            assert got == acknowledged[name], f"{name}: a read returned wrong bytes"
    faults, delayed = tally(soak_server, faults, delayed)
    soak_server.faults.clear()
    assert_alive(soak_drive)
    soak_drive.umount()  # waits for every upload
    remote = Remote(soak_server)
    lost = sum(len(data) for name, data in acknowledged.items() if remote.get("/" + name) != data)
    run_s = time.monotonic() - started
    report_failures(failures, soak_drive)
    print(f"soak: {ops} operations ({failed} failed with an errno), {faults} faults injected, "
          f"{delayed} requests delayed, 1 restart, 1 token expiry, {len(acknowledged)} files checked, {lost} bytes lost, {run_s:.0f} s")
    assert lost == 0
    # each fault injected is one the mount rides out (retries, a new login, a
    # job created again): no operation may see an errno for it
    assert failures == [], f"{len(failures)} operation(s) failed with an errno"


# ---- fsstress (xfstests) against tmpfs ------------------------------------------
FSSTRESS_DIR = Path(__file__).parent / "fsstress"
FSSTRESS_SEEDS = [42, 20261203]


@pytest.fixture(scope="session")
def fsstress(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fsstress built from xfstests' source (not packaged for Debian): set
    CLOUDFS_XFSTESTS_SRC to a checkout of it (kdave/xfstests)."""
    source = os.environ.get("CLOUDFS_XFSTESTS_SRC")
    if not source or not (Path(source) / "ltp" / "fsstress.c").is_file():
        pytest.skip("fsstress needs xfstests' source: set CLOUDFS_XFSTESTS_SRC to a checkout of kdave/xfstests")
    if not Path("/usr/include/xfs/xfs.h").is_file() or shutil.which("gcc") is None:
        pytest.skip("building fsstress needs gcc and xfslibs-dev (apt-get install gcc xfslibs-dev)")
    if os.geteuid() != 0:
        pytest.skip("the fsstress reference run mounts a tmpfs: needs root")
    binary = tmp_path_factory.mktemp("fsstress") / "fsstress"
    ltp = Path(source) / "ltp"
    run_tool(["gcc", "-O2", "-D_GNU_SOURCE", "-DHAVE_XFS_XFS_H", "-DHAVE_XFS_JDM_H", "-DHAVE_RENAMEAT2",
              "-DHAVE_SYS_PRCTL_H", "-DHAVE_LINUX_FIEMAP_H", f"-I{FSSTRESS_DIR}", f"-I{ltp.parent / 'src'}",
              f"-I{ltp.parent / 'include'}", "-o", str(binary), str(ltp / "fsstress.c"), "-lm"], ltp, timeout=300)
    return binary


def run_fsstress(binary: Path, where: Path, seed: int) -> None:
    """2,000 operations in 4 processes, RENAME_EXCHANGE included; with the
    operations a drive cannot do turned off, deterministic per seed."""
    flags = (FSSTRESS_DIR / "flags.txt").read_text().split()
    run_tool([str(binary), "-d", str(where), "-n", "2000", "-p", "4", "-s", str(seed), *flags], where.parent,
             timeout=1700)


def snapshot(top: Path) -> dict[str, str]:
    """Every entry below ``top``: 'dir' for a folder, size and SHA-256 for a file."""
    found = {}
    for folder, dirs, files in os.walk(top):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), top)] = "dir"
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as fp:
                digest = hashlib.file_digest(fp, "sha256").hexdigest()
            found[os.path.relpath(path, top)] = f"{os.path.getsize(path)} {digest}"
    return found


def differences(expected: dict[str, str], got: dict[str, str]) -> list[str]:
    out = [f"missing {p} ({expected[p]})" for p in sorted(expected.keys() - got.keys())]
    out += [f"extra {p} ({got[p]})" for p in sorted(got.keys() - expected.keys())]
    out += [f"{p}: {got[p]}, expected {expected[p]}" for p in sorted(expected.keys() & got.keys())
            if expected[p] != got[p]]
    return out


@pytest.fixture(scope="session")
def fsstress_reference(fsstress: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, str]]:
    """What each seed leaves on tmpfs."""
    reference = {}
    for seed in FSSTRESS_SEEDS:
        where = tmp_path_factory.mktemp(f"tmpfs-{seed}")
        subprocess.run(["mount", "-t", "tmpfs", "cloudfs-fsstress-ref", str(where)], check=True)
        try:
            run_fsstress(fsstress, where / "fss", seed)
            reference[seed] = snapshot(where / "fss")
        finally:
            subprocess.run(["umount", str(where)], check=True)
    return reference


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("seed", FSSTRESS_SEEDS)
def test_fsstress_matches_tmpfs(fsstress: Path, fsstress_reference: dict[int, dict[str, str]], seed: int,
                                fresh_server: RunningServer, tmp_path: Path) -> None:
    """The tree and every byte fsstress leaves (RENAME_EXCHANGE and folder
    renames with uploads pending included) are tmpfs's, live and after a
    remount with an empty cache (everything then comes from the server), with
    no conflict copies and no upload left pending at umount."""
    expected = fsstress_reference[seed]
    with mounted(fresh_server, tmp_path / "first") as drive:
        run_fsstress(fsstress, drive / "fss", seed)
        live = snapshot(drive / "fss")
        assert differences(expected, live) == [], "live mount"
        assert "(conflict" not in drive.log()
    with mounted(fresh_server, tmp_path / "second") as drive:  # a new, empty cache dir
        assert differences(expected, snapshot(drive / "fss")) == [], "after a remount with an empty cache"
