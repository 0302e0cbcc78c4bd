"""Reference images: the EHT collaboration's official eht-imaging M87 pipeline
(data product 2019-D01-02, `eht-imaging/eht-imaging_pipeline.py`, M87 Paper IV) on the
public EHT 2017 M87 data (release 2019-D01-01), one image per observing day, lo + hi band.

The official file is run as it is, with one change made in memory: its Fourier transform
line `ttype     = 'nfft' ...` becomes `ttype = 'direct'` (pynfft does not install beside
numpy 2; 'direct' is ehtim's exact DFT, which 'nfft' approximates closely, so only the speed
and round-off change). The script stops if that line is not found exactly once. The pipeline
is GPL and is not copied into this repository; get it from the mirror of
github.com/eventhorizontelescope/2019-D01-02:

  git --git-dir=/work/.mirror/eventhorizontelescope+2019-D01-02/repo/.git \
      show HEAD:eht-imaging/eht-imaging_pipeline.py > /tmp/eht-imaging_pipeline.py

Each day runs as `python PIPELINE -i LO.uvfits -i2 HI.uvfits -o OUT.fits` (the modified
source is exec'd in this process with that sys.argv). Writes `OUT/pipeline_DAY.fits` and
`OUT/pipeline_times.json` (wall-clock and CPU seconds and the 1-min load average per day,
ehtim version, CPU model). Existing outputs are never overwritten without `--force`.

Usage (3-4 min per day on a 2-core AMD EPYC shared with a Rust build):
  nice /work/venv-ehtim/bin/python benches/reference/eht_imaging_pipeline_m87.py \
      --pipeline /tmp/eht-imaging_pipeline.py --data /work/shared/data/eht/m87-2017 \
      --out studies/m87/pipeline
Needs `pip install ehtim==1.3.2` (not a project dependency: a measuring stick only).
"""
import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time

TTYPE_LINE = re.compile(r"^ttype\s*=\s*'nfft'.*$", re.MULTILINE)
FILE = "SR1_M87_2017_{day}_{band}_hops_netcal_StokesI.uvfits"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pipeline", required=True, help="eht-imaging_pipeline.py (see docstring)")
    p.add_argument("--data", default="/work/shared/data/eht/m87-2017", help="release uvfits folder")
    p.add_argument("--days", default="095,096,100,101")
    p.add_argument("--out", default="studies/m87/pipeline")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = p.parse_args()

    if not os.path.isfile(args.pipeline):
        sys.exit(f"error: pipeline file not found: {args.pipeline} (see --help / docstring)")
    with open(args.pipeline, "rb") as f:
        raw = f.read()
    src = raw.decode()
    hits = TTYPE_LINE.findall(src)
    if len(hits) != 1:
        sys.exit(f"error: expected exactly one line matching {TTYPE_LINE.pattern!r} "
                 f"in {args.pipeline}, found {len(hits)}: is this the official file?")
    src = TTYPE_LINE.sub("ttype = 'direct'", src)
    code = compile(src, os.path.abspath(args.pipeline), "exec")

    days = [d.strip() for d in args.days.split(",") if d.strip()]
    inputs = {}
    for day in days:
        lo, hi = (os.path.join(args.data, FILE.format(day=day, band=b)) for b in ("lo", "hi"))
        for path in (lo, hi):
            if not os.path.isfile(path):
                sys.exit(f"error: data file not found: {path}")
        inputs[day] = (lo, hi)

    os.makedirs(args.out, exist_ok=True)
    outs = {day: os.path.join(args.out, f"pipeline_{day}.fits") for day in days}
    exist = [x for x in outs.values() if os.path.exists(x)]
    if exist and not args.force:
        sys.exit(f"error: outputs exist (use --force to overwrite): {', '.join(exist)}")
    times_path = os.path.join(args.out, "pipeline_times.json")
    old = {}
    if os.path.exists(times_path):  # keep the other days' times; a day is redone only with --force
        with open(times_path) as f:
            old = json.load(f)

    t0 = time.perf_counter()
    import ehtim as eh
    import_s = time.perf_counter() - t0

    from importlib.metadata import version
    record = {
        "pipeline": "eventhorizontelescope/2019-D01-02 eht-imaging/eht-imaging_pipeline.py",
        "pipeline_sha256": hashlib.sha256(raw).hexdigest(),
        "change": "ttype = 'nfft' -> 'direct'",
        "ehtim_version": version("ehtim"),
        "python": platform.python_version(),
        "numpy": version("numpy"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "ehtim_import_seconds": round(import_s, 3),
        "wall_seconds": old.get("wall_seconds", {}),
        "cpu_seconds": old.get("cpu_seconds", {}),  # this process's CPU time (all threads)
        "loadavg_1min_end": old.get("loadavg_1min_end", {}),  # other work on the machine
    }
    argv0 = sys.argv
    for day in days:
        lo, hi = inputs[day]
        sys.argv = [args.pipeline, "-i", lo, "-i2", hi, "-o", outs[day]]
        print(f"=== day {day}: {' '.join(sys.argv[1:])}", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        exec(code, {"__name__": "__main__", "__file__": args.pipeline})
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        for key, val in (("wall_seconds", round(dt, 2)), ("cpu_seconds", round(dc, 2)),
                         ("loadavg_1min_end", round(os.getloadavg()[0], 2))):
            record[key][day] = val
            record[key] = dict(sorted(record[key].items()))
        with open(times_path, "w") as f:  # after each day, so a crash keeps the finished ones
            json.dump(record, f, indent=2)
            f.write("\n")
        print(f"=== day {day}: {dt:.1f} s -> {outs[day]}", flush=True)
    sys.argv = argv0

    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
