"""Build only the variants notebooks 07 and 08 need, fast: the workshop's quick path.

    python -m helpers.quick_variants            # or: make quick

Notebooks 07 (runtime selection) and 08 (dashboard) read whatever the manifest holds. In a
workshop there may be no time to run 01-06 first; this builds, in about two minutes on a laptop
CPU, the baseline (as notebook 01 does), its three post-training quantizations (as notebook 02
does: dynamic range, float16, full int8) and notebook 06's student architecture trained alone with
plain cross-entropy (notebook 06 itself trains it on mixup views, which takes longer), and registers them with peak memory measured. Variants that are already registered and whose file
still matches its hash are kept as they are, so running it after the full notebooks changes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

from helpers.paths import data_dir, models_dir

# a plain recipe for notebook 06's student trained alone (no mixup views: the quick path's budget)
STUDENT_RECIPE = {"epochs": 30, "batch_size": 64, "learning_rate": 3e-3}


def _registered(models: Path) -> dict[str, dict[str, Any]]:
    from helpers import accounting, registry

    manifest = registry.manifest_path(models)
    if not manifest.exists():
        return {}
    entries = {}
    for v in registry.load_manifest(manifest)["variants"]:
        path = Path(models) / v["path"]
        if path.exists() and accounting.sha256(path) == v.get("sha256"):
            entries[v["name"]] = v
    return entries


def ptq_conversions(model: Any, x_train: Any, seed: int) -> dict[str, tuple[str, Callable[[], bytes]]]:
    """The three post-training quantizations of notebook 02, with its converter settings."""
    from helpers import data
    from helpers.keras_setup import quiet_native_stderr, tf

    tf_ = tf()

    def convert(configure: Callable[[Any], None]) -> bytes:
        converter = tf_.lite.TFLiteConverter.from_keras_model(model)
        configure(converter)
        with quiet_native_stderr():
            return converter.convert()

    def dynamic(c: Any) -> None:
        c.optimizations = [tf_.lite.Optimize.DEFAULT]

    def float16(c: Any) -> None:
        c.optimizations = [tf_.lite.Optimize.DEFAULT]
        c.target_spec.supported_types = [tf_.float16]

    def full_int8(c: Any) -> None:
        c.optimizations = [tf_.lite.Optimize.DEFAULT]
        c.representative_dataset = data.representative_batches(x_train, 200, seed=seed)
        c.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = tf_.int8
        c.inference_output_type = tf_.int8

    return {
        "ptq_dynamic": ("ptq_dynamic_range", lambda: convert(dynamic)),
        "ptq_fp16": ("ptq_float16", lambda: convert(float16)),
        "ptq_int8": ("ptq_full_int8", lambda: convert(full_int8)),
    }


def build(data: Path, seed: int = 0, log: Callable[[str], None] = print) -> list[str]:
    """Build and register whatever of the quick set is missing; return the names built now."""
    from helpers import accounting, distillation, registry
    from helpers import data as datasets
    from helpers.keras_setup import quiet_native_stderr, tf
    from helpers.models import ensure_baseline_fp32
    from helpers.training import budget

    ds = datasets.load_dataset(data=data, seed=seed)
    models = models_dir(data, ds.name)
    start = time.perf_counter()
    baseline, _ = ensure_baseline_fp32(models, ds, seed=seed)
    log(f"baseline_fp32 ready ({time.perf_counter() - start:.0f} s)")
    have = _registered(models)
    built = []
    params = accounting.count_params(baseline)
    for name, (technique, convert) in ptq_conversions(baseline, ds.x_train, seed).items():
        if name in have:
            continue
        path = registry.save_tflite(convert(), models, name)
        registry.register_tflite(models, path, name, technique, ds, params=params, measure_memory=True,
                                 notes="helpers.quick_variants (notebook 02's settings)")
        built.append(name)
        log(f"{name} registered ({time.perf_counter() - start:.0f} s)")
    if "student_scratch_fp32" not in have:
        student = distillation.train_student(
            distillation.seeded(lambda: distillation.build_student_cnn(ds.input_shape, ds.num_classes), seed),
            ds.x_train, ds.y_train, seed=seed, **budget(STUDENT_RECIPE, len(ds.y_train), full_pass=True))
        with quiet_native_stderr():
            content = tf().lite.TFLiteConverter.from_keras_model(student).convert()
        path = registry.save_tflite(content, models, "student_scratch_fp32")
        registry.register_tflite(models, path, "student_scratch_fp32", "student_scratch", ds,
                                 params=accounting.count_params(student), measure_memory=True,
                                 notes="helpers.quick_variants (notebook 06's student, trained alone with plain cross-entropy)")
        built.append("student_scratch_fp32")
        log(f"student_scratch_fp32 registered ({time.perf_counter() - start:.0f} s)")
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    built = build(data_dir(), seed=args.seed, log=lambda line: print(line, flush=True))
    print(f"quick variants: {len(built)} built ({', '.join(built) or 'all were already registered'}) "
          f"in {time.perf_counter() - start:.0f} s", file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
