"""``edgekd data eeg ...``: write the synthetic motor-imagery set, or check local EEG datasets."""


def add_parser(sub):
    p = sub.add_parser("data", help="datasets: write synthetic EEG, check local EEG files",
                       description="Dataset utilities. Nothing is ever downloaded.")
    kinds = p.add_subparsers(dest="data_kind", metavar="KIND", required=True)
    eeg = kinds.add_parser("eeg", help="EEG motor-imagery datasets")
    which = eeg.add_subparsers(dest="eeg_dataset", metavar="DATASET", required=True)

    s = which.add_parser("synthetic", help="write a synthetic motor-imagery set as EDF files (EEGMMI layout)")
    s.add_argument("--out", required=True, help="data root to write (MNE-eegbci-data/ goes inside)")
    s.add_argument("--synthetic-subjects", type=int, default=10, help="subjects to write")
    s.add_argument("--trials", type=int, default=20, help="cues per run (3 runs per subject)")
    s.add_argument("--sfreq", type=float, default=160.0, help="sampling rate in Hz")
    s.add_argument("--seed", type=int, default=0, help="seed of the generated signals")
    s.set_defaults(func=run_synthetic)

    for name, text in (("eegbci", "PhysioNet EEG Motor Movement/Imagery, runs 4/8/12 (EDF)"),
                       ("bci_iv_2a", "BCI Competition IV-2a training sessions (GDF)")):
        c = which.add_parser(name, help=f"check and list local files of {text}")
        c.add_argument("--data", default=None, help="data root (default: $EDGEKD_DATA, then ~/edgekd_data)")
        c.add_argument("--subjects", type=int, nargs="*", default=None, help="subject numbers (default: all found)")
        c.set_defaults(func=run_check, dataset=name)
    return p


def run_synthetic(args):
    from ..data.eeg import SyntheticMIConfig, write_synthetic_mi
    from ..data.eeg.eegbci import eegbci_files

    cfg = SyntheticMIConfig(subjects=args.synthetic_subjects, trials_per_run=args.trials, sfreq=args.sfreq, seed=args.seed)
    out = write_synthetic_mi(args.out, cfg, verbose=args.verbose or None)
    files = eegbci_files(path=out)
    print(f"wrote {len(files)} EDF files ({cfg.subjects} subjects x {len(cfg.runs)} runs, "
          f"{cfg.trials_per_run} cues each) under {out}")


def run_check(args):
    from ..data.eeg.bci_iv_2a import bci_iv_2a_files, read_gdf
    from ..data.eeg.eegbci import eegbci_files, read_edf
    from ..data.eeg.synthetic import is_synthetic

    if args.dataset == "eegbci":
        files = eegbci_files(args.subjects, path=args.data)
        first = read_edf(files[0])
        kind = " (synthetic stand-in)" if is_synthetic(files[0].parents[5]) else ""
    else:
        files = bci_iv_2a_files(args.data, args.subjects)
        first = read_gdf(files[0])
        kind = ""
    for f in files:
        print(f)
    print(f"{len(files)} files{kind}; {files[0].name}: {first.info['nchan']} channels at {first.info['sfreq']:g} Hz, "
          f"{first.n_times / first.info['sfreq']:.0f} s, events {sorted(set(first.annotations.description))}")
