"""What the peer scripts of this folder share: their common flags, the machine they ran on, and
the JSON record they write (atomically, so a reader such as `cargo bench --bench ncsnpp` never
sees half a file)."""
import argparse
import datetime
import json
import os
import platform
import sys


def add_common_args(parser, out_name, repeats):
    """`--threads`, `--sizes`, `--repeats`, `--out` (default out/<out_name> beside this file) and
    the hidden `--child` a script passes to the copy of itself it reruns per thread count."""
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", out_name))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)


def parse_args(parser, measure):
    """The parsed flags; in the child copy of a script (`--child THREADS`) instead prints
    `measure(THREADS, args)` as JSON for the parent and returns None."""
    args = parser.parse_args()
    if args.child is None:
        return args
    json.dump(measure(args.child, args), sys.stdout)
    return None


def machine(**extra):
    """System, architecture, CPU count and load average at the end of the run, plus `extra`."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"system": platform.system(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average": list(load) if load else None, **extra}


def write_record(path, record):
    """Writes `record` with the current UTC time as JSON to `path` (its folder created)."""
    record = {**record, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    print(f"wrote {path}")
