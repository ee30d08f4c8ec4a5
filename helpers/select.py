"""Choose a model variant from the manifest, as an app would at start-up.

    python -m helpers.select --manifest data/models/manifest.json --profile low_end_phone
    python -m helpers.select --manifest data/models/manifest.json --max-size-kb 200 --min-accuracy 0.95 --json

Prints the chosen variant's name and file path (``--json``: its whole manifest entry). Flags override
the profile's budgets. Variants whose file is missing or fails its SHA-256 check are skipped with a
note on stderr. Exit status: 0 a variant was chosen; 2 nothing fits (one line naming the constraint
that ruled everything out), or the manifest is missing or malformed, or an argument is invalid.
``--fallback smallest`` serves the smallest variant instead of refusing (exit 0, note on stderr).

Imports no TensorFlow (only the manifest and hashes are read), so it starts in about a second.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from helpers.selection import (
    FALLBACKS, KB, OBJECTIVES, PROFILES, Constraints, ManifestError, NoVariantFits, load_verified, select_variant,
)

EXIT_OK, EXIT_NO_FIT = 0, 2


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"accuracy is a fraction in [0, 1], got {text} (write 0.95, not 95)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.select", description="Pick the model variant that fits a device's budgets.",
    )
    parser.add_argument("--manifest", type=Path, required=True, help="path to manifest.json")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="start from a device profile's budgets")
    parser.add_argument("--max-size-kb", type=_positive(float), help="largest model file, in KB (1024 bytes)")
    parser.add_argument("--max-memory-kb", type=_positive(float), help="largest measured peak memory, in KB")
    parser.add_argument("--max-latency-ms", type=_positive(float), help="slowest median latency at --threads")
    parser.add_argument("--min-accuracy", type=_fraction, help="accuracy floor, a fraction in [0, 1]")
    parser.add_argument("--threads", type=_positive(int), help="thread count the app will run with (default: profile's, else 1)")
    parser.add_argument("--objective", choices=OBJECTIVES,
                        help="what to optimise among variants that fit (default: the profile's, else best_accuracy)")
    parser.add_argument("--fallback", choices=FALLBACKS, default="refuse", help="when nothing fits: refuse (exit 2) or serve the smallest")
    parser.add_argument("--json", action="store_true", help="print the chosen variant's whole manifest entry as JSON")
    parser.add_argument("--no-verify", action="store_true", help="skip the SHA-256 check of each file (faster, less safe)")
    return parser


def constraints_from(args: argparse.Namespace) -> Constraints:
    """The profile's budgets (or none) with the explicit flags on top."""
    overrides = {
        "max_size_bytes": None if args.max_size_kb is None else int(args.max_size_kb * KB),
        "max_memory_bytes": None if args.max_memory_kb is None else int(args.max_memory_kb * KB),
        "max_latency_ms": args.max_latency_ms,
        "min_accuracy": args.min_accuracy,
        "threads": args.threads,
    }
    if args.profile:
        return PROFILES[args.profile].constraints(**overrides)
    return Constraints(**{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.manifest.is_file():
        print(f"error: no manifest at {args.manifest}; run the notebooks first (make run) or pass the right "
              "--manifest (e.g. data/models/manifest.json).", file=sys.stderr)
        return EXIT_NO_FIT
    try:
        manifest = load_verified(args.manifest, verify_hash=not args.no_verify)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_FIT
    except OSError as exc:  # e.g. a directory or an unreadable file given as --manifest
        print(f"error: cannot read the manifest {args.manifest.name!r} ({exc.strerror}).", file=sys.stderr)
        return EXIT_NO_FIT
    for skip in manifest.skipped:
        print(f"note: skipped {skip.name}: {skip.reason}", file=sys.stderr)
    try:
        objective = args.objective or (PROFILES[args.profile].objective if args.profile else "best_accuracy")
        choice = select_variant(manifest, constraints_from(args), objective, args.fallback)
    except NoVariantFits as exc:
        print(f"no variant fits: {exc}", file=sys.stderr)
        return EXIT_NO_FIT
    if choice.fallback:
        broken = "; ".join(choice.rejected.get(choice.name, []))
        print(f"note: nothing fits every constraint; serving the smallest variant, which breaks: {broken}", file=sys.stderr)
    if args.json:
        print(json.dumps(choice.variant, indent=2))
    else:
        print(f"{choice.name} {args.manifest.parent / choice.variant['path']}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
