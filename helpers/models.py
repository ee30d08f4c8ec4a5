"""Model builders: the workbook's baseline CNN and a mobile-scale network for latency studies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.keras_setup import keras

BASELINE_KERAS = "baseline.keras"
# The recipe notebook 01 trains with; load_or_train_baseline() repeats it when the model is missing.
BASELINE_RECIPE = {"epochs": 30, "batch_size": 32, "learning_rate": 1e-3}


def build_baseline_cnn(input_shape: tuple[int, ...], num_classes: int) -> Any:
    """Conv + dense classifier (about 150 k parameters on 8x8 digits) that outputs logits.

    Big enough that quantization, pruning and clustering have something to remove; small enough to
    train in seconds on a laptop CPU.
    """
    k = keras()
    return k.Sequential(
        [
            k.layers.InputLayer(input_shape=input_shape, name="image"),
            k.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
            k.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
            k.layers.MaxPooling2D(name="pool"),
            k.layers.Flatten(name="flatten"),
            k.layers.Dense(128, activation="relu", name="dense"),
            k.layers.Dropout(0.3, name="dropout"),
            k.layers.Dense(num_classes, name="logits"),
        ],
        name="baseline_cnn",
    )


def build_mobile_model(
    input_shape: tuple[int, ...], num_classes: int, alpha: float = 0.35, resolution: int = 96
) -> Any:
    """Keras MobileNetV2 (``weights=None``), fed through a ``Resizing`` layer to ``resolution``.

    A phone-scale graph (depthwise convolutions, hundreds of thousands of parameters) for latency
    studies; small inputs are upsampled inside the graph. Grayscale inputs are used as-is.
    """
    if resolution < 32:
        raise ValueError(f"MobileNetV2 needs a resolution of at least 32, got {resolution}.")
    k = keras()
    inputs = k.Input(shape=input_shape, name="image")
    x = k.layers.Resizing(resolution, resolution, name="resize")(inputs)
    backbone = k.applications.MobileNetV2(
        input_shape=(resolution, resolution, input_shape[-1]),
        alpha=alpha,
        include_top=False,
        weights=None,
        pooling="avg",
    )
    x = backbone(x)
    outputs = k.layers.Dense(num_classes, name="logits")(x)
    return k.Model(inputs, outputs, name=f"mobilenetv2_{alpha}_{resolution}")


def compile_classifier(model: Any, learning_rate: float = 1e-3) -> Any:
    """Adam + sparse categorical cross-entropy on logits + accuracy: the workbook's one recipe."""
    k = keras()
    model.compile(
        optimizer=k.optimizers.Adam(learning_rate),
        loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def load_or_train_baseline(models: Path, dataset: Any, seed: int = 0) -> Any:
    """Load ``<models>/baseline.keras``; if it is missing, train it as notebook 01 does
    (:data:`BASELINE_RECIPE` scaled to the training set by :func:`helpers.training.budget`, same
    seed) and save it.

    Lets every notebook run alone from a fresh kernel. ``models`` is the dataset's models folder
    (:func:`helpers.paths.models_dir`). Holds ``baseline.keras.lock`` while it checks and trains,
    so two processes never train it twice at once (the second waits, then loads it).
    """
    from filelock import FileLock

    from helpers.repro import set_seed
    from helpers.training import budget, fit

    path = Path(models) / BASELINE_KERAS
    path.parent.mkdir(parents=True, exist_ok=True)
    k = keras()
    with FileLock(str(path) + ".lock", timeout=3600, is_singleton=True):
        if path.exists():
            return k.models.load_model(path)
        print(f"{path.name} not found: training the baseline as notebook 01 does ...")
        set_seed(seed)
        recipe = budget(BASELINE_RECIPE, len(dataset.y_train), full_pass=True)
        model = compile_classifier(
            build_baseline_cnn(dataset.input_shape, dataset.num_classes), recipe["learning_rate"]
        )
        fit(model, dataset.x_train, dataset.y_train, (dataset.x_val, dataset.y_val),
            epochs=recipe["epochs"], batch_size=recipe["batch_size"], seed=seed, every=recipe["epochs"],
            steps_per_epoch=recipe.get("steps_per_epoch"))
        save_keras_atomic(model, path)
    return model


def save_keras_atomic(model: Any, path: Path) -> Path:
    """Save a Keras model to ``path`` via a unique temp file and a rename
    (:func:`helpers.paths.atomic_write_with`); the temp file is removed if saving fails."""
    from helpers.paths import atomic_write_with

    return atomic_write_with(Path(path), lambda tmp: model.save(tmp))


def ensure_baseline_fp32(models: Path, dataset: Any, seed: int = 0) -> tuple[Any, Path]:
    """The baseline Keras model and its registered float32 file ``<models>/baseline_fp32.tflite``.

    What every notebook after 01 starts from. Whatever is missing is rebuilt as notebook 01 builds
    it: the Keras model (:func:`load_or_train_baseline`), the plain ``TFLiteConverter`` conversion,
    and the ``baseline_fp32`` manifest entry. A file that no longer matches its entry's SHA-256 is
    converted and registered again. The check and the rebuild run under the manifest's lock
    (:func:`helpers.registry.manifest_lock`), so two notebooks never rebuild it over each other.
    """
    from helpers import accounting, registry
    from helpers.keras_setup import quiet_native_stderr, tf

    model = load_or_train_baseline(models, dataset, seed)
    path = Path(models) / "baseline_fp32.tflite"
    manifest = registry.manifest_path(models)
    with registry.manifest_lock(manifest):
        entries = {v["name"]: v for v in registry.load_manifest(manifest)["variants"]} if manifest.exists() else {}
        entry = entries.get("baseline_fp32")
        if entry is not None and path.exists() and accounting.sha256(path) == entry["sha256"]:
            return model, path
        with quiet_native_stderr():
            content = tf().lite.TFLiteConverter.from_keras_model(model).convert()
        path = registry.save_tflite(content, models, "baseline_fp32")
        registry.register_tflite(
            models, path, "baseline_fp32", "baseline", dataset,
            params=accounting.count_params(model), sparsity=accounting.keras_sparsity(model),
        )
    print("baseline_fp32 was missing or changed: converted and registered it as notebook 01 does")
    return model, path
