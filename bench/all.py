"""Every benchmark in one run, one table (``make bench``).

    .venv/bin/python bench/all.py [--dialects v4 v3 koodrive] [--read-mib 1024] [--write-mib 256] [--reps 3]

Runs the read side (``mount_read.py``), the write side
(``mount_write.py``) and rsync (``mount_rsync.py``, beside an rclone mount
when rclone and wsgidav are installed) against each dialect's bundled server, each figure
beside its baseline from the same run, and prints one table of medians and
ratios.  Run as root (the cold figures drop the kernel's caches).
"""

from __future__ import annotations

import argparse

import mount_read
import mount_rsync
import mount_write
from harness import Row, print_table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dialects", nargs="+", choices=["v4", "v3", "koodrive"], default=["v4", "v3"])
    parser.add_argument("--read-mib", type=int, default=1024)
    parser.add_argument("--rss-mib", type=int, default=2048)
    parser.add_argument("--write-mib", type=int, default=256)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rsync-files", type=int, default=500)
    parser.add_argument("--wsgidav", help="wsgidav command for the rclone comparison (default: on PATH)")
    parser.add_argument("--only", choices=["read", "write", "rsync"], nargs="+", default=["read", "write", "rsync"])
    parser.add_argument("--random-reads", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    rows: list[Row] = []
    for dialect in args.dialects:
        read_args = argparse.Namespace(size_mib=args.read_mib, rss_mib=args.rss_mib, reps=args.reps,
                                       random_reads=args.random_reads)
        write_args = argparse.Namespace(size_mib=args.write_mib, reps=args.reps, files=args.files,
                                        rss_mib=args.rss_mib)
        rsync_args = argparse.Namespace(files=args.rsync_files, reps=args.reps, wsgidav=args.wsgidav,
                                        repo_files=1000)
        rows.append(Row("[KooDrive]" if dialect == "koodrive" else f"[Cloudreve {dialect}]", ""))
        if "read" in args.only:
            rows += mount_read.run(read_args, dialect)
        if "write" in args.only:
            rows += mount_write.run(write_args, dialect)
        if "rsync" in args.only:
            rows += mount_rsync.run(rsync_args, dialect)
        print_table(f"so far, medians of {args.reps}", rows)  # partial results survive an interrupted run
    print_table(f"cloudfs benchmarks, medians of {args.reps} (ratios: baseline time / cloudfs time)", rows)


if __name__ == "__main__":
    main()
