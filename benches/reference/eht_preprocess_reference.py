"""Reference numbers for the data pre-processing of the EHT collaboration's eht-imaging M87
pipeline (data product 2019-D01-02, `eht-imaging/eht-imaging_pipeline.py`, M87 Paper IV),
computed by ehtim itself, step by step, for one day of the public EHT 2017 M87 data
(lo + hi band). The steps are the pipeline's; the code here is this project's own:

 a. load_uvfits per band: visibility count, stations present
 b. add_scans() + avg_coherent(0., scan_avg=True) per band: count, scans, the full averaged
    table (-> STEM_lo_avg.csv, STEM_hi_avg.csv, rows sorted by time, t1, t2)
 c. join: hi time += 0.00001 h, concatenate, drop tarr sites without data, rebuild the
    Obsdata; zbl_tot = median AA-AP amplitude; records with |uv| < 0.1e9 rescaled by
    zbl/zbl_tot = 0.6/zbl_tot (vis and sigma); reorder_tarr_snr()
 d. add_fractional_noise(0.02) on the rescaled data, and as the pipeline does it, after
    reverse_taper(5 uas) (-> STEM_joined.csv: the joined table after step c, rows sorted by
    time, t1, t2, baselines oriented as after reorder_tarr_snr, with the three sigma columns)
 e. closure-phase / log-closure-amplitude counts and median sigmas on the final obs
 f. the per-station systematic noise the pipeline builds from its SEFD error budget

Writes the numbers as JSON to --out and prints them.

Usage:
  nice /work/venv-ehtim/bin/python benches/reference/eht_preprocess_reference.py --day 101 \
      --data /work/shared/data/eht/m87-2017 \
      --out scoreprior-core/tests/data/eht-m87/ehtim-preprocess-101.json
Needs `pip install ehtim==1.3.2` (not a project dependency: a measuring stick only).
"""
import argparse
import csv
import json
import os
import sys

import numpy as np

FILE = "SR1_M87_2017_{day}_{band}_hops_netcal_StokesI.uvfits"
ZBL = 0.60  # the pipeline's compact flux (Jy)
UV_ZBLCUT = 0.1e9  # the pipeline's zero-baseline cut (lambda)
SYS_NOISE = 0.02  # the pipeline's fractional systematic noise
TAPER_UAS = 5.0  # the pipeline's reverse taper (uas)
SEFD_ERROR_BUDGET = {"AA": 0.10, "AP": 0.11, "AZ": 0.07, "LM": 0.22,  # M87 Paper III, as in
                     "PV": 0.10, "SM": 0.15, "JC": 0.14, "SP": 0.07}  # the pipeline


def stations(data):
    return sorted(set(data["t1"]) | set(data["t2"]))


def sorted_rows(data):
    return data[np.lexsort((data["t2"], data["t1"], data["time"]))]


def write_csv(path, data, extra=()):
    """Rows sorted by (time, t1, t2); floats as repr (full precision)."""
    cols = ["time", "t1", "t2", "u", "v", "vis_re", "vis_im", "sigma", "tint"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols + [name for name, _ in extra])
        for i, r in enumerate(data):
            w.writerow([repr(float(r["time"])), str(r["t1"]), str(r["t2"]), repr(float(r["u"])),
                        repr(float(r["v"])), repr(float(r["vis"].real)), repr(float(r["vis"].imag)),
                        repr(float(r["sigma"])), repr(float(r["tint"]))]
                       + [repr(float(col[i])) for _, col in extra])


def stats(x):
    x = np.asarray(x, dtype=float)
    return {"min": float(np.min(x)), "median": float(np.median(x)), "max": float(np.max(x))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--day", default="101", help="095, 096, 100 or 101")
    p.add_argument("--data", default="/work/shared/data/eht/m87-2017", help="release uvfits folder")
    p.add_argument("--out", required=True, help="JSON file; CSVs are written beside it")
    args = p.parse_args()

    paths = {b: os.path.join(args.data, FILE.format(day=args.day, band=b)) for b in ("lo", "hi")}
    for path in paths.values():
        if not os.path.isfile(path):
            sys.exit(f"error: data file not found: {path}")
    stem = os.path.splitext(args.out)[0]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)

    import ehtim as eh
    from importlib.metadata import version

    out = {"day": args.day, "ehtim_version": version("ehtim"), "numpy": version("numpy"),
           "pandas": version("pandas"), "files": {b: os.path.basename(x) for b, x in paths.items()}}

    # a + b: per band
    avg = {}
    for band, path in paths.items():
        obs = eh.obsdata.load_uvfits(path)
        rec = {"a_load": {"n_vis": len(obs.data), "stations": stations(obs.data),
                          "tarr": [str(s) for s in obs.tarr["site"]],
                          "n_times": len(np.unique(obs.data["time"]))}}
        obs.add_scans()
        a = obs.avg_coherent(0., scan_avg=True)
        # how ehtim time-stamps a scan average: the earliest time of that baseline in the scan
        scan_of = np.searchsorted(obs.scans[:, 1], a.data["time"])
        first = np.array([obs.data["time"][(obs.data["time"] >= obs.scans[k, 0]) &
                                           (obs.data["time"] <= obs.scans[k, 1])].min()
                          for k in scan_of])
        rec["b_avg"] = {
            "n_vis": len(a.data), "n_scans": len(obs.scans),
            "n_times": len(np.unique(a.data["time"])),
            "n_stamped_later_than_scan_start": int(np.sum(a.data["time"] != first)),
            "n_nan_vis": int(np.sum(~np.isfinite(a.data["vis"]))),
            "n_nan_sigma": int(np.sum(~np.isfinite(a.data["sigma"]))),
            "scans_h": [[float(s0), float(s1)] for s0, s1 in obs.scans],
            "csv": os.path.basename(f"{stem}_{band}_avg.csv"),
        }
        write_csv(f"{stem}_{band}_avg.csv", sorted_rows(a.data))
        out[band] = rec
        avg[band] = a

    # c: join as the pipeline does
    obs1, obs2 = avg["lo"], avg["hi"]
    obs2.data["time"] += 0.00001
    obs = obs1.copy()
    obs.data = np.concatenate([obs1.data, obs2.data])
    n_concat = len(obs.data)
    zbl_tot = np.median(obs.unpack_bl("AA", "AP", "amp")["amp"])
    n_aa_ap = len(obs.unpack_bl("AA", "AP", "amp"))
    present = set(stations(obs.data))
    obs.tarr = obs.tarr[[s in present for s in obs.tarr["site"]]]
    obs = eh.obsdata.Obsdata(obs.ra, obs.dec, obs.rf, obs.bw, obs.data, obs.tarr,
                             source=obs.source, mjd=obs.mjd,
                             ampcal=obs.ampcal, phasecal=obs.phasecal)
    uvdist = np.hypot(obs.data["u"], obs.data["v"])
    short = uvdist < UV_ZBLCUT
    mult = ZBL / zbl_tot
    for field in ["vis", "qvis", "uvis", "vvis", "sigma", "qsigma", "usigma", "vsigma"]:
        obs.data[field][short] *= mult
    tarr_before = [str(s) for s in obs.tarr["site"]]
    short_bl = [f"{a}-{b}" for a, b in zip(obs.data["t1"][short], obs.data["t2"][short])]
    obs.reorder_tarr_snr()  # also re-orients baselines and re-sorts the rows
    out["c_join"] = {
        "n_vis_concatenated": n_concat, "n_vis": len(obs.data),
        "n_times": len(np.unique(obs.data["time"])),
        "n_aa_ap": n_aa_ap, "zbl_tot": float(zbl_tot), "zbl_tot_repr": repr(float(zbl_tot)),
        "rescale_multiplier": float(mult), "n_rescaled_uvdist_lt_0.1e9": int(short.sum()),
        "rescaled_baselines": {bl: short_bl.count(bl) for bl in sorted(set(short_bl))},
        "tarr_after_flag": tarr_before,
        "tarr_after_reorder_tarr_snr": [str(s) for s in obs.tarr["site"]],
    }

    # d: fractional noise, on the rescaled data and as the pipeline does it (after the taper)
    frac = obs.add_fractional_noise(SYS_NOISE)
    obs_sc = obs.reverse_taper(TAPER_UAS * eh.RADPERUAS).add_fractional_noise(SYS_NOISE)
    order = np.lexsort((obs.data["t2"], obs.data["t1"], obs.data["time"]))
    for o in (frac, obs_sc):  # same records in the same order, only sigma changed
        assert np.array_equal(o.data["time"], obs.data["time"])
        assert np.array_equal(o.data["t1"], obs.data["t1"]) and np.array_equal(o.data["t2"], obs.data["t2"])
    joined_csv = f"{stem}_joined.csv"
    write_csv(joined_csv, obs.data[order],
              extra=[("sigma_frac", frac.data["sigma"][order]),
                     ("sigma_taper_frac", obs_sc.data["sigma"][order])])
    out["d_sigma"] = {"rescaled": stats(obs.data["sigma"]),
                      "fractional_noise": stats(frac.data["sigma"]),
                      "reverse_taper_then_fractional_noise": stats(obs_sc.data["sigma"]),
                      "csv": os.path.basename(joined_csv)}

    # e: closure quantities on the final pre-processed obs
    def cp(o, **kw):
        return o.c_phases(mode="all", **kw)

    def lca(o, count):
        return o.c_amplitudes(mode="all", ctype="logcamp", count=count, debias=True)

    cp_min = cp(obs, count="min", uv_min=UV_ZBLCUT)
    lca_min = lca(obs, "min")
    cp_min_sc = cp(obs_sc, count="min", uv_min=UV_ZBLCUT)
    lca_min_sc = lca(obs_sc, "min")
    times = np.unique(obs.data["time"])
    tl = obs.tlist()
    out["e_closures"] = {
        "tarr": [str(s) for s in obs.tarr["site"]],
        "n_cphase_min_uvmin": len(cp_min),
        "n_cphase_min": len(cp(obs, count="min")),
        "n_cphase_min_cut0bl_uvmin": len(cp(obs, count="min-cut0bl", uv_min=UV_ZBLCUT)),
        "n_cphase_min_cut0bl": len(cp(obs, count="min-cut0bl")),
        "n_cphase_max_uvmin": len(cp(obs, count="max", uv_min=UV_ZBLCUT)),
        "n_cphase_max": len(cp(obs, count="max")),
        "n_logcamp_min": len(lca_min),
        "n_logcamp_max": len(lca(obs, "max")),
        "median_sigmacp_deg_min_uvmin": float(np.median(cp_min["sigmacp"])),
        "median_logcamp_sigma_min": float(np.median(lca_min["sigmaca"])),
        "median_sigmacp_deg_min_uvmin_taper_frac": float(np.median(cp_min_sc["sigmacp"])),
        "median_logcamp_sigma_min_taper_frac": float(np.median(lca_min_sc["sigmaca"])),
        "n_times": len(times),
        "first_times": [{"time": repr(float(t["time"][0])), "n_vis": len(t),
                         "stations": stations(t)} for t in tl[:5]],
        "n_stations_per_time": [len(stations(t)) for t in tl],
    }

    # f: the pipeline's per-station systematic noise
    sysn = {k: ((1.0 + b) ** 0.5 - 1.0) * 0.25 for k, b in SEFD_ERROR_BUDGET.items()}
    sysn["LM"] += 0.15
    out["f_systematic_noise"] = sysn

    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
