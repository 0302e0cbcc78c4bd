"""Reference imaging: eht-imaging's regularised maximum-likelihood (RML) imager on the same
EHT observation that `scoreprior measure --forward 'eht(fov=160)'` simulates, imaged from
closure phases and log closure amplitudes only.

Observation (as `Observation::sgr_a_star` in scoreprior-core): the EHT 2017 array of
`assets/eht/EHT2017.txt`, a Sgr A*-like source (RA 17h45m40s, Dec -29d00m28s) on MJD 57850,
230 GHz, 4 GHz bandwidth, scans every 600 s over 0-24 h UTC, 10 deg elevation cutoff,
`--tint` s integrations (default 10), thermal noise from the SEFDs, no gain errors.

Source: `--source ring|crescent|double` generated here on the same grid and with the same
parametrisation as scoreprior's `TestSource` (pixel (i, j) at east = ((N-1)/2 - j) d,
north = ((N-1)/2 - i) d; ring exp(-(r - R)^2 / 2w^2); crescent = ring * (1 + a cos(theta -
theta0)), theta east of north; blobs = circular Gaussians of given FWHM), or `--npy FILE`
(an (N, N) or (1, N, N) array, row 0 = north), total flux `--flux` Jy.

Imaging: a circular Gaussian starting image and prior (FWHM `--prior-fwhm` uas, the true
total flux), data terms cphase and logcamp, regularisers MEM ('simple'), TSV ('tv2') and
'flux', then `--rounds` rounds of blur-to-the-nominal-resolution and re-imaging, as in
ehtim's examples.

Writes into `--out`: truth.npy, image.npy (row 0 = north, Jy/pixel) and image.fits (ehtim's
save_fits), obs.txt (Obsdata.save_txt: the observation scoreprior reads with
`eht(obs='obs.txt')`), and summary.json (counts, chi^2 of the closure data, wall times).

Other modes:
  --counts          print visibility/scan/closure counts and a few sigmas of `observe`
                    (the numbers pinned in scoreprior-core/tests/forward_interferometry.rs)
  --export-small F  write a small save_txt export (cadence 7200 s, 32x32 crescent, seed 1) to F

Usage: python3 benches/reference/ehtim_rml.py --source ring --out benches/reference/out/ring
Needs `pip install ehtim==1.3.2` (not a project dependency: a measuring stick only).
"""
import argparse
import json
import os
import time

import numpy as np
import ehtim as eh

p = argparse.ArgumentParser()
p.add_argument("--source", default="ring", choices=["ring", "crescent", "double"])
p.add_argument("--npy", default=None)
p.add_argument("--npix", type=int, default=32)
p.add_argument("--fov", type=float, default=160.0, help="field of view, uas")
p.add_argument("--flux", type=float, default=1.0)
p.add_argument("--tint", type=float, default=10.0)
p.add_argument("--cadence", type=float, default=600.0)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--prior-fwhm", type=float, default=60.0, help="uas")
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--maxit", type=int, default=200)
p.add_argument("--array", default="assets/eht/EHT2017.txt")
p.add_argument("--out", default="benches/reference/out/ring")
p.add_argument("--counts", action="store_true")
p.add_argument("--export-small", default=None)
args = p.parse_args()

RA = 17 + 45 / 60 + 40 / 3600.0
DEC = -(29 + 28 / 3600.0)
RF, BW, MJD = 230e9, 4e9, 57850


def render(kind, npix, fov, flux):
    d = fov / npix
    c = (npix - 1) / 2.0
    i, j = np.mgrid[0:npix, 0:npix]
    east, north = (c - j) * d, (c - i) * d
    r = np.hypot(east, north)

    def ring(radius, width):
        return np.exp(-((r - radius) ** 2) / (2 * width**2))

    if kind == "ring":
        img = ring(25.0, 5.0)
    elif kind == "crescent":
        theta = np.arctan2(east, north)
        img = ring(25.0, 5.0) * (1 + 0.6 * np.cos(theta - np.deg2rad(150.0)))
    else:  # double blob
        img = np.zeros_like(r)
        for x, y, fwhm, f in [(-20.0, 10.0, 25.0, 1.0), (22.0, -12.0, 18.0, 0.6)]:
            s = fwhm / np.sqrt(8 * np.log(2))
            img += f / (2 * np.pi * s * s) * np.exp(-((east - x) ** 2 + (north - y) ** 2) / (2 * s * s))
    return img * flux / img.sum()


def ehtim_image(arr, npix, fov_uas):
    im = eh.image.make_empty(npix, fov_uas * eh.RADPERUAS, RA, DEC, rf=RF, source="SgrA", mjd=MJD)
    # ehtim's imvec is row-major with row 0 = north and column 0 = east, as our images.
    im.imvec = np.asarray(arr, dtype=float).ravel().copy()
    return im


def observe(im, eht, tint, cadence, noise, seed):
    return im.observe(eht, tint, cadence, 0, 24, BW, add_th_noise=noise, ampcal=True, phasecal=True,
                      ttype="direct", elevmin=10, seed=seed, verbose=False)


eht = eh.array.load_txt(args.array)

if args.counts:
    im = ehtim_image(render("ring", args.npix, args.fov, args.flux), args.npix, args.fov)
    obs = observe(im, eht, args.tint, args.cadence, False, args.seed)
    cp = obs.c_phases(mode="all", count="min", vtype="vis")
    lca = obs.c_amplitudes(mode="all", count="min", vtype="vis", ctype="logcamp")
    d = obs.data
    print(json.dumps({"visibilities": len(d), "scans": len(np.unique(d["time"])), "closure_phases": len(cp),
                      "log_closure_amplitudes": len(lca),
                      "first": [float(d["time"][0]), str(d["t1"][0]), str(d["t2"][0]), float(d["u"][0]),
                                float(d["v"][0]), float(d["sigma"][0])]}, indent=1))
    raise SystemExit

if args.export_small:
    im = ehtim_image(render("crescent", 32, 160.0, 1.0), 32, 160.0)
    obs = observe(im, eht, 10.0, 7200.0, True, 1)
    obs.save_txt(args.export_small)
    print("wrote", args.export_small, len(obs.data), "visibilities")
    raise SystemExit

os.makedirs(args.out, exist_ok=True)
truth = np.load(args.npy).reshape(args.npix, args.npix) if args.npy else render(args.source, args.npix, args.fov,
                                                                                 args.flux)
im = ehtim_image(truth, args.npix, args.fov)
t0 = time.time()
obs = observe(im, eht, args.tint, args.cadence, True, args.seed)
t_obs = time.time() - t0
obs.add_cphase(count="min")
obs.add_logcamp(count="min")
res = obs.res()

prior = eh.image.make_empty(args.npix, args.fov * eh.RADPERUAS, RA, DEC, rf=RF, source="SgrA", mjd=MJD)
prior = prior.add_gauss(args.flux, (args.prior_fwhm * eh.RADPERUAS, args.prior_fwhm * eh.RADPERUAS, 0, 0, 0))
data_term = {"cphase": 100, "logcamp": 100}
reg_term = {"simple": 1, "tv2": 1, "flux": 10}
t0 = time.time()
imgr = eh.imager.Imager(obs, prior, prior, args.flux, data_term=data_term, reg_term=reg_term,
                        maxit=args.maxit, ttype="direct", norm_reg=True, stop=1e-8)
imgr.make_image(show_updates=False)
for _ in range(args.rounds):
    out = imgr.out_last()
    imgr.init_next = out.blur_circ(res)
    imgr.prior_next = imgr.init_next
    imgr.dat_term_next = data_term
    imgr.reg_term_next = reg_term
    imgr.make_image(show_updates=False)
t_img = time.time() - t0
out = imgr.out_last()
img = out.imvec.reshape(args.npix, args.npix)

chi2 = {k: float(obs.chisq(out, dtype=k, ttype="direct", count="min")) for k in ["cphase", "logcamp"]}
np.save(os.path.join(args.out, "truth.npy"), truth)
np.save(os.path.join(args.out, "image.npy"), img)
out.save_fits(os.path.join(args.out, "image.fits"))
obs.save_txt(os.path.join(args.out, "obs.txt"))


def ncc(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def best_ncc(img, ref):
    # Closure quantities do not fix the absolute position: align by the best integer shift.
    return max((ncc(np.roll(img, (dy, dx), (0, 1)), ref), dy, dx) for dy in range(-8, 9) for dx in range(-8, 9))


# Normalised cross-correlation with the truth blurred to the nominal resolution, at the best shift.
tb = im.blur_circ(res).imvec.reshape(args.npix, args.npix)
ncc_b, dy, dx = best_ncc(img, tb)
ncc_t = best_ncc(img, truth)[0]
summary = {"source": args.npy or args.source, "npix": args.npix, "fov_uas": args.fov, "tint_s": args.tint,
           "visibilities": len(obs.data), "closure_phases": len(obs.cphase), "log_closure_amplitudes": len(obs.logcamp),
           "nominal_resolution_uas": res / eh.RADPERUAS, "chi2_reduced": chi2, "ncc_blurred_truth": ncc_b,
           "ncc_truth": ncc_t, "best_shift_pixels": [dy, dx], "total_flux": float(img.sum()),
           "rounds": 1 + args.rounds, "maxit": args.maxit, "observe_seconds": t_obs, "imaging_seconds": t_img,
           "ehtim_version": getattr(eh, "__version__", "1.3.2")}
with open(os.path.join(args.out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
print(json.dumps(summary, indent=1))
