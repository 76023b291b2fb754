"""A/B of ``git status`` after a remount, in a clone made through mounts of
two cloudfs source trees, interleaved run by run in one environment.

    .venv/bin/python bench/git_status_ab.py --a /path/to/main --b . [--reps 3] [--dialect v4]

Per run and tree: a local repository of ``--repo-files`` files is cloned
three times into a fresh mount (and ``git status`` run in each a second
later, so that git's index is newer than its files: no "racily clean"
entries), which is then unmounted (everything on the server); then ``git
status`` runs in each clone after a remount: one keeping the cache dir,
one with the read cache (``blocks``) emptied (as when it evicted the files),
one with the cache dir wiped.
Reported: its time, the worktree files it opened (``strace``: git reads
and hashes every file whose stat differs from its index), and the downloads
it made (content requests counted by the bundled server; with the cache dir
kept, the block cache may serve what git reads).  The machine is shared and noisy: ratios are taken pair by pair
(A's run and B's next to each other), and medians are printed.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from harness import Mount, ab_arguments, environment
from mount_rsync import make_repo

#: requests that fetch a file's content
DOWNLOADS = {
    "v4": r"^/api/v4/file/(url|content/)",
    "v3": r"^/api/v3/file/download/",
    "koodrive": r"(/files/download$|^/obs/(?!upload/))",
}
CASES = ("kept", "noblocks", "wiped")
#: a worktree file git opened for reading (it runs in the worktree: paths are relative; .git/ is not the worktree)
OPENED = re.compile(r'^\d+ +open(?:at)?\((?:AT_FDCWD, )?"(?!\.git[/"]|/)[^"]+", O_RDONLY(?![^)]*O_DIRECTORY)[^)]*\) = \d+',
                    re.M)

#: seconds, files opened, downloads
Result = tuple[float, int, int]


def status_after_remount(server, mount: Mount, clone: Path, dialect: str) -> Result:  # type: ignore[no-untyped-def]
    mount.mount()
    trace = clone.parent.parent / "git-status.strace"
    try:
        server.faults.set(path_regex=DOWNLOADS[dialect], latency_s=0.0)  # counted, not failed
        start = time.perf_counter()
        subprocess.run(["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=open,openat", "-o", str(trace),
                        "git", "-C", str(clone), "status", "--porcelain"], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        downloads = int(server.faults.stats()["matched"])
        server.faults.clear()
    finally:
        mount.umount()
    return seconds, len(OPENED.findall(trace.read_text())), downloads


def one_run(server, base: Path, repo: Path, name: str, source: Path, rep: int,  # type: ignore[no-untyped-def]
            dialect: str) -> dict[str, Result]:
    os.environ["PYTHONPATH"] = str(source)
    mount = Mount(server, base / f"mnt-{name}", base / f"mcache-{name}", options="delete=permanent")
    mount.wipe_cache()
    mount.mount()
    clones = {case: mount.path / f"clone-{name}-{rep}-{case}" for case in CASES}
    try:
        for clone in clones.values():
            subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(repo), str(clone)], check=True)
        time.sleep(1.1)
        for clone in clones.values():
            subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], check=True, stdout=subprocess.DEVNULL)
    finally:
        mount.umount()
    out = {"kept": status_after_remount(server, mount, clones["kept"], dialect)}
    shutil.rmtree(mount.cache_dir / "blocks")
    out["noblocks"] = status_after_remount(server, mount, clones["noblocks"], dialect)
    mount.wipe_cache()
    out["wiped"] = status_after_remount(server, mount, clones["wiped"], dialect)
    return out


def main() -> None:
    parser = ab_arguments(reps=3)
    parser.add_argument("--repo-files", type=int, default=300)
    args = parser.parse_args()
    sources = {"A": args.a.resolve(), "B": args.b.resolve()}
    runs: dict[str, list[dict[str, Result]]] = {name: [] for name in sources}
    with environment(faults=True, dialect=args.dialect) as (server, base):
        repo = base / "repo"
        make_repo(repo, args.repo_files)
        for rep in range(args.reps):
            for name, source in sources.items():
                runs[name].append(one_run(server, base, repo, name, source, rep, args.dialect))
            print(f"run {rep + 1}: " + "; ".join(
                f"{n} " + ", ".join(f"{case} {r[-1][case][0]:.2f} s {r[-1][case][1]} read {r[-1][case][2]} downloads"
                                    for case in CASES)
                for n, r in runs.items()), flush=True)
    print(f"\n== git status after a remount, {args.repo_files} files, {args.dialect}, medians of {args.reps}, "
          "interleaved")
    print("  A = " + str(sources["A"]) + ", B = " + str(sources["B"]))
    for case in CASES:
        for name, rows in runs.items():
            print(f"  cache dir {case:8s} {name}: {statistics.median(r[case][0] for r in rows):6.2f} s, "
                  f"files read {statistics.median(r[case][1] for r in rows):.0f}, "
                  f"downloads {statistics.median(r[case][2] for r in rows):.0f}")
        pairs = [b[case][0] / a[case][0] for a, b in zip(runs["A"], runs["B"])]
        print(f"  cache dir {case:8s} B / A time, pair by pair: median {statistics.median(pairs):.2f} "
              f"({', '.join(f'{p:.2f}' for p in pairs)})")


if __name__ == "__main__":
    main()
