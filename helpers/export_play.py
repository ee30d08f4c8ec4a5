"""Export the manifest's variants as a Play for On-device AI pack with RAM-keyed device groups.

    python -m helpers.export_play --manifest data/models/manifest.json --out data/play [--profiles ...]

Play delivers one AI pack folder per *device group*; the groups are defined in
``device_targeting_configuration.xml`` by device properties, here the device's RAM. This writes
the layout LiteRT's own AI-pack exporter writes (``ai_edge_litert.aot.ai_pack.export_lib``)::

    <out>/device_targeting_configuration.xml
    <out>/<pack>/src/main/assets/model#group_<profile>/<model>.tflite   one per phone profile
    <out>/<pack>/src/main/assets/model#group_other/<model>.tflite       devices in no group
    <out>/targeting.json, <out>/targeting.md                             profile -> group -> variant

Each phone profile becomes exactly one group, and its variant is what :mod:`helpers.selection`
chooses for that profile (the same call as ``python -m helpers.select --profile P``): the export
never ships a variant the selector would refuse for that device. Groups are RAM bands that do not
overlap: a band starts at the profile's advertised RAM minus :data:`REPORTED_RAM_SHORTFALL_BYTES`
(Android reports 0.3-0.9 GB less RAM than a phone is advertised with, so an "8 GB" phone may report
7.1 GB) and ends where the next larger band starts. ``#group_other`` serves every device below the
smallest band, or whose RAM Play does not know, with the variant of the most constrained profile.

What cannot be checked here: building the app bundle (bundletool, the Android Gradle plugin's
``com.android.ai-pack`` plugin) and delivery through Play. The tests parse the XML and check the
groups, the bands and the fallback.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from helpers.paths import atomic_write_bytes, atomic_write_text

CONFIG_NS = "http://schemas.android.com/apk/config"
GB = 1_000_000_000  # phones are advertised in decimal gigabytes
# Android reports up to this much less RAM than a phone is advertised with (kernel and carve-outs).
REPORTED_RAM_SHORTFALL_BYTES = 900_000_000
# The advertised RAM of the phone class each selection profile stands for.
ADVERTISED_RAM_BYTES = {"high_end_phone": 12 * GB, "mid_range_phone": 6 * GB, "low_end_phone": 3 * GB}
_GROUP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ExportError(ValueError):
    """A profile that cannot be given a group: unknown or without a RAM class (``status`` 2, a usage
    error), or no variant fits it (``status`` 4, as the selector's "nothing fits")."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Group:
    """One device group: the profile it stands for, its RAM band and its variant."""

    profile: str
    group: str
    ram_min_bytes: int
    ram_max_bytes: int | None
    variant: str
    path: str
    size_bytes: int


def ram_bands(profiles: Iterable[str]) -> dict[str, tuple[int, int | None]]:
    """Non-overlapping ``[min, max)`` RAM bands, one per profile, from the advertised RAM minus the
    reported-RAM shortfall; the largest band is open-ended."""
    ordered = sorted(profiles, key=lambda p: ADVERTISED_RAM_BYTES[p])
    mins = [ADVERTISED_RAM_BYTES[p] - REPORTED_RAM_SHORTFALL_BYTES for p in ordered]
    return {p: (mins[i], mins[i + 1] if i + 1 < len(ordered) else None) for i, p in enumerate(ordered)}


def plan(manifest: Path, profiles: Iterable[str] | None = None) -> tuple[list[Group], Group]:
    """The groups (largest RAM first) and the ``other`` fallback, each with its selected variant."""
    from helpers.selection import PROFILES, NoVariantFits, constraints_for, load_verified, select_variant

    names = list(profiles) if profiles else list(ADVERTISED_RAM_BYTES)
    if not names:
        raise ExportError("no profiles given; name at least one phone profile.")
    for name in names:
        if name not in PROFILES:
            raise ExportError(f"unknown profile {name!r}; choose from {', '.join(ADVERTISED_RAM_BYTES)}.")
        if name not in ADVERTISED_RAM_BYTES:
            raise ExportError(f"profile {name!r} is not a phone class with a RAM size, so Play cannot target it; "
                              f"choose from {', '.join(ADVERTISED_RAM_BYTES)}.")
    if len(set(names)) != len(names):
        raise ExportError(f"profiles repeat: {names}.")
    verified = load_verified(Path(manifest))
    bands = ram_bands(names)
    groups = []
    for name in sorted(names, key=lambda p: -ADVERTISED_RAM_BYTES[p]):
        constraints, objective = constraints_for(name)
        try:
            chosen = select_variant(verified, constraints, objective).variant
        except NoVariantFits as exc:
            raise ExportError(f"profile {name!r} gets no group: {exc}", status=4) from None
        lo, hi = bands[name]
        groups.append(Group(name, name, lo, hi, chosen["name"], chosen["path"], int(chosen["size_bytes"])))
    smallest = groups[-1]
    other = Group(smallest.profile, "other", 0, smallest.ram_min_bytes, smallest.variant, smallest.path,
                  smallest.size_bytes)
    return groups, other


def targeting_xml(groups: Iterable[Group]) -> str:
    """``device_targeting_configuration.xml``: one ``device-group`` per group, keyed by RAM."""
    ET.register_namespace("config", CONFIG_NS)
    root = ET.Element(f"{{{CONFIG_NS}}}device-targeting-config")
    for g in groups:
        if not _GROUP_NAME.match(g.group):
            raise ExportError(f"group name {g.group!r} must be letters, digits and '_', starting with a letter.")
        group = ET.SubElement(root, f"{{{CONFIG_NS}}}device-group", name=g.group)
        attrs = {"ram-min-bytes": str(g.ram_min_bytes)}
        if g.ram_max_bytes is not None:
            attrs["ram-max-bytes"] = str(g.ram_max_bytes)
        ET.SubElement(group, f"{{{CONFIG_NS}}}device-selector", attrs)
    ET.indent(root, space="    ")
    return ET.tostring(root, encoding="unicode", xml_declaration=False) + "\n"


def export(manifest: Path, out: Path, profiles: Iterable[str] | None = None, pack: str = "models",
           model_file: str = "model") -> dict:
    """Write the AI pack layout, the targeting XML and the profile -> group -> variant table."""
    if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", pack) or not re.match(r"^[A-Za-z0-9_.-]+$", model_file):
        raise ExportError(f"pack {pack!r} must be letters, digits and '_'; model file {model_file!r} a plain name.")
    groups, other = plan(manifest, profiles)
    out = Path(out)
    assets = out / pack / "src" / "main" / "assets"
    if assets.exists():
        shutil.rmtree(assets)  # a previous export's groups must not linger
    models = Path(manifest).parent
    for g in [*groups, other]:
        atomic_write_bytes(assets / f"{model_file}#group_{g.group}" / f"{model_file}.tflite",
                           (models / g.path).read_bytes())
    atomic_write_text(out / "device_targeting_configuration.xml", targeting_xml(groups))
    table = {"pack": pack, "model_file": f"{model_file}.tflite",
             "reported_ram_shortfall_bytes": REPORTED_RAM_SHORTFALL_BYTES,
             "groups": [asdict(g) for g in groups], "other": asdict(other)}
    atomic_write_text(out / "targeting.json", json.dumps(table, indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / "targeting.md", markdown_table(groups, other))
    return table


def _gb(value: int | None) -> str:
    return "no limit" if value is None else f"{value / GB:.1f} GB"


def markdown_table(groups: Iterable[Group], other: Group) -> str:
    """The profile -> group -> variant table, as Markdown."""
    lines = ["| profile | group | RAM reported by the device | variant | size (bytes) |", "|---|---|---|---|---|"]
    for g in groups:
        lines.append(f"| {g.profile} | `#group_{g.group}` | {_gb(g.ram_min_bytes)} to {_gb(g.ram_max_bytes)} "
                     f"| {g.variant} | {g.size_bytes} |")
    lines.append(f"| (any other device) | `#group_other` | below {_gb(other.ram_max_bytes)} or unknown "
                 f"| {other.variant} | {other.size_bytes} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.export_play", description=__doc__.splitlines()[0],
        epilog="exit status: 0 exported, 2 usage, 3 manifest unusable, 4 a profile has no variant that fits. "
               "Building the bundle needs bundletool / the Android Gradle plugin, and delivery needs Play: "
               "neither is checked here.")
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profiles", nargs="+", metavar="PROFILE",
                        help=f"phone profiles to target (default: {' '.join(ADVERTISED_RAM_BYTES)})")
    parser.add_argument("--pack", default="models", help="AI pack name (default: models)")
    args = parser.parse_args(argv)
    from helpers.registry import ManifestError

    try:
        table = export(args.manifest, args.out, args.profiles, args.pack)
    except ManifestError as exc:
        print(f"export_play: {exc}", file=sys.stderr)
        return 3
    except ExportError as exc:
        print(f"export_play: {exc}", file=sys.stderr)
        return exc.status
    groups = [Group(**g) for g in table["groups"]]
    print(markdown_table(groups, Group(**table["other"])), end="")
    print(f"wrote {args.out / 'device_targeting_configuration.xml'} and {len(groups) + 1} group folders "
          f"under {args.out / args.pack}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
