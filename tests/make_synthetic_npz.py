"""Write a large synthetic 28x28 dataset built from scikit-learn's digits, for trying a big ``.npz``.

    python tests/make_synthetic_npz.py /tmp/big60k.npz            # 60,000 train + 10,000 test

Every image is one of the 1,797 bundled 8x8 digits, scaled to 12-22 pixels, placed at a random
offset in a 28x28 frame, with Gaussian noise; uint8 0..255, 10 classes. No download needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def synthetic_digits(n: int, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random ``size`` x ``size`` uint8 images and their int64 labels (0..9)."""
    from scipy.ndimage import affine_transform
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(bunch.images), n)
    scale = rng.uniform(12, 22, n)
    out = np.empty((n, size, size), np.uint8)
    for i, (k, s) in enumerate(zip(pick, scale)):
        src = bunch.images[k] / 16.0
        zoom = 8.0 / s  # output pixel -> source pixel
        offset = rng.uniform(0, size - s, 2)
        img = affine_transform(src, np.diag([zoom, zoom]), offset=-offset * zoom, output_shape=(size, size),
                               order=1, mode="constant", cval=0.0)
        img = img + rng.normal(0, 0.08, img.shape)
        out[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return out, bunch.target[pick].astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=60_000)
    parser.add_argument("--test", type=int, default=10_000)
    args = parser.parse_args(argv)
    x, y = synthetic_digits(args.train + args.test)
    np.savez_compressed(args.out, x_train=x[: args.train], y_train=y[: args.train],
                        x_test=x[args.train:], y_test=y[args.train:])
    print(f"{args.out}: {args.train} train + {args.test} test images, {x.shape[1:]}, 10 classes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
