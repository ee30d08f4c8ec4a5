"""Choose a model variant from the manifest, as an app would at start-up.

    python -m helpers.select --manifest data/models/manifest.json --profile low_end_phone
    python -m helpers.select --manifest data/models/manifest.json --max-size-kb 200 --min-accuracy 0.95 --json
    python -m helpers.select --manifest data/models/manifest.json --calibration device.json --profile low_end_phone

Prints the chosen variant's name and file path (``--json``: its whole manifest entry). Flags override
the profile's budgets (:func:`helpers.selection.constraints_for`). Variants that break the manifest
schema, or whose file is missing or fails its SHA-256 check, are skipped with a note on stderr.
``--calibration`` replaces the manifest's latency and peak memory with the numbers
``python -m helpers.calibrate`` measured on this device, for the variants it covers.

Exit status (every failure prints one line on stderr, never a traceback):
    0  a variant was chosen (also when ``--fallback smallest`` served the smallest; a note says so)
    2  usage: an invalid argument (not a number, negative, zero, NaN, accuracy outside [0, 1], ...)
    3  the manifest is unusable: missing, unreadable, not JSON, malformed top level, unknown
       ``schema_version``, or no variant left after skipping the malformed and unverifiable ones;
       or the ``--calibration`` file is missing or not a calibration file
    4  nothing fits: one line naming the constraint that ruled every variant out

A budget of ``inf`` (or a number too large for a float, such as ``1e400``) means no limit, even
where the profile sets one.

Imports no TensorFlow (only the manifest and hashes are read), so it starts in about a second.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import NoReturn

from helpers.selection import (
    FALLBACKS, KB, OBJECTIVES, PROFILES, CalibrationError, ManifestError, NoVariantFits, apply_calibration,
    constraints_for, load_calibration, load_verified, select_variant,
)

EXIT_OK, EXIT_USAGE, EXIT_MANIFEST, EXIT_NO_FIT = 0, 2, 3, 4

_EPILOG = f"""\
exit status:
  {EXIT_OK}  a variant was chosen (also a --fallback smallest choice; a note on stderr says so)
  {EXIT_USAGE}  usage: an invalid argument (not a number, zero, negative, nan, accuracy outside [0, 1])
  {EXIT_MANIFEST}  the manifest is unusable: missing, unreadable, not JSON, malformed, unknown
     schema_version, or no usable variant left after skipping malformed or unverified entries;
     or the --calibration file is missing or malformed
  {EXIT_NO_FIT}  nothing fits: one line names the constraint that ruled every variant out

Budgets: 'inf' (or a number beyond float range, e.g. 1e400) means no limit, also over a
--profile's limit. Sizes may be
fractional KB; a budget below one byte fits nothing (exit {EXIT_NO_FIT}).
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: ...; see --help``) and the usage exit status."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message} (see python -m helpers.select --help)\n")


def _budget(kind: str):
    """A positive budget: a finite positive number, or inf / a float-overflowing number for no limit."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if math.isnan(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number (nan); give a positive {kind}, or inf for no limit")
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text} (a {kind}; inf for no limit)")
        return value  # inf: constraints_for removes the limit (even a profile's)

    return parse


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of threads") from None
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"threads must be between 1 and 1024, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"accuracy is a fraction in [0, 1], got {text} (write 0.95, not 95)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m helpers.select", description="Pick the model variant that fits a device's budgets.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--manifest", type=Path, required=True, help="path to manifest.json")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="start from a device profile's budgets")
    parser.add_argument("--max-size-kb", type=_budget("size in KB"), help="largest model file, in KB (1024 bytes)")
    parser.add_argument("--max-memory-kb", type=_budget("memory in KB"), help="largest measured peak memory, in KB")
    parser.add_argument("--max-latency-ms", type=_budget("latency in ms"), help="slowest median latency at --threads")
    parser.add_argument("--min-accuracy", type=_fraction, help="accuracy floor, a fraction in [0, 1]")
    parser.add_argument("--threads", type=_threads, help="thread count the app will run with (default: profile's, else 1)")
    parser.add_argument("--objective", choices=OBJECTIVES,
                        help="what to optimise among variants that fit (default: the profile's, else best_accuracy)")
    parser.add_argument("--fallback", choices=FALLBACKS, default="refuse",
                        help=f"when nothing fits: refuse (exit {EXIT_NO_FIT}) or serve the smallest (exit 0)")
    parser.add_argument("--json", action="store_true", help="print the chosen variant's whole manifest entry as JSON")
    parser.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check of each file (faster, less safe)")
    parser.add_argument("--calibration", type=Path, metavar="DEVICE_JSON",
                        help="use latency and memory measured on this device (python -m helpers.calibrate --out ...)")
    return parser


def budget_from(args: argparse.Namespace):
    """The profile's full budget (:func:`helpers.selection.constraints_for`) with the flags on top."""
    return constraints_for(
        args.profile,
        objective=args.objective,
        max_size_bytes=None if args.max_size_kb is None else args.max_size_kb * KB,
        max_memory_bytes=None if args.max_memory_kb is None else args.max_memory_kb * KB,
        max_latency_ms=args.max_latency_ms,
        min_accuracy=args.min_accuracy,
        threads=args.threads,
    )


def constraints_from(args: argparse.Namespace):
    """The profile's constraints (or none) with the explicit flags on top (see :func:`budget_from`)."""
    return budget_from(args).constraints


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        constraints, objective = budget_from(args)
    except ValueError as exc:  # a budget Constraints refuses (defensive: the parsers check first)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.manifest.is_file():
        print(f"error: no manifest at {args.manifest}; run the notebooks first (make run) or pass the right "
              "--manifest (e.g. data/models/manifest.json).", file=sys.stderr)
        return EXIT_MANIFEST
    try:
        manifest = load_verified(args.manifest, verify_hash=not args.no_verify)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_MANIFEST
    except OSError as exc:  # e.g. an unreadable file given as --manifest
        print(f"error: cannot read the manifest {args.manifest.name!r} ({exc.strerror}).", file=sys.stderr)
        return EXIT_MANIFEST
    for skip in manifest.skipped:
        print(f"note: skipped {skip.name}: {skip.reason}", file=sys.stderr)
    candidates = manifest
    if args.calibration is not None:
        try:
            calibration = load_calibration(args.calibration)
        except CalibrationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_MANIFEST
        candidates = apply_calibration(manifest.variants, calibration)
        made = calibration.get("made_on", {})
        covered = sum(1 for v in candidates if v["calibrated"])
        batch = int(calibration.get("batch", 1))
        print(f"note: {covered} of {len(manifest.variants)} variants use latency and memory calibrated on "
              f"{made.get('cpu') or made.get('machine') or 'an unnamed machine'} ({made.get('date', 'undated')})"
              + (f"; latencies are per request of {batch} inputs, and only calibrated variants compete" if batch != 1 else ""),
              file=sys.stderr)
    try:
        choice = select_variant(candidates, constraints, objective, args.fallback)
    except NoVariantFits as exc:
        if exc.constraint == "available":
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_MANIFEST
        print(f"no variant fits: {exc}", file=sys.stderr)
        return EXIT_NO_FIT
    if choice.fallback:
        broken = "; ".join(choice.rejected.get(choice.name, []))
        print(f"note: nothing fits every constraint; serving the smallest variant, which breaks: {broken}", file=sys.stderr)
    if args.json:
        print(json.dumps(choice.variant, indent=2, allow_nan=False))
    else:
        print(f"{choice.name} {args.manifest.parent / choice.variant['path']}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
