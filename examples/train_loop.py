"""A training loop fed by spdl.io, without a DataLoader.

    python examples/train_loop.py

Each step loads one batch of training crops (random resized crop, random flip,
float32, normalised, NCHW) on the loop's executor while the model trains on the
batch before: the loader is one coroutine ahead. With PyTorch installed the model
is a small torch network; without it, a linear classifier in numpy, so the
example runs anywhere. It trains on JPEGs of two classes that it makes itself.
"""

from __future__ import annotations

import asyncio
import io
import pathlib
import tempfile
import time

import numpy as np

import spdl.io

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BATCH, SIZE, STEPS = 32, 64, 12


def make_images(folder: pathlib.Path, n: int = 96) -> list[pathlib.Path]:
    """n small JPEGs of two classes (bright top half / bright bottom half: a flip keeps
    the class)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = rng.integers(0, 64, (120 + i % 7, 160, 3), dtype=np.uint8)
        half = slice(0, 60) if i % 2 else slice(60, None)
        img[half] += 150
        path = folder / f"{i:03d}_{i % 2}.jpg"
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def make_model():
    """(train_step(batch, labels) -> loss) for a torch model if torch is there, else numpy."""
    try:
        import torch
    except ImportError:
        w = np.zeros((3 * SIZE * SIZE, 2), dtype=np.float32)

        def numpy_step(x, y):
            nonlocal w
            flat = x.reshape(len(x), -1)
            logits = flat @ w
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            loss = -np.log(p[np.arange(len(y)), y] + 1e-9).mean()
            p[np.arange(len(y)), y] -= 1
            w -= 1e-4 * flat.T @ p / len(y)
            return float(loss)

        return numpy_step, spdl.io.to_numpy
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def torch_step(x, y):
        loss = torch.nn.functional.cross_entropy(model(x), torch.as_tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return torch_step, spdl.io.to_torch


async def train(paths: list[pathlib.Path]) -> None:
    step, to_tensor = make_model()
    labels = np.array([int(p.stem.rsplit("_", 1)[1]) for p in paths])
    rng = np.random.default_rng(1)

    def load(order: np.ndarray, seed: int):
        return spdl.io.async_load_image_batch(
            [paths[i] for i in order], width=SIZE, height=SIZE,
            crop=spdl.io.RandomResizedCrop(scale=(0.35, 1.0)), hflip=0.5, seed=seed,
            dtype="float32", mean=MEAN, std=STD, layout="NCHW", strict=False)

    order = rng.permutation(len(paths))[:BATCH]
    pending = asyncio.ensure_future(load(order, seed=0))
    t0 = time.perf_counter()
    for k in range(STEPS):
        buf, rows = await pending, order
        order = rng.permutation(len(paths))[:BATCH]
        pending = asyncio.ensure_future(load(order, seed=k + 1))  # the next batch, meanwhile
        x = to_tensor(buf)                      # (N, 3, SIZE, SIZE) float32, no copy
        y = labels[rows[list(buf.indices)]]     # rows that loaded (strict=False)
        loss = step(x, y)
        print(f"step {k}: batch {tuple(x.shape)} {x.dtype}, loss {loss:.3f}, "
              f"first crop {buf.crops[0]}")
    await pending
    print(f"{STEPS * BATCH / (time.perf_counter() - t0):.0f} images/s including training")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(train(make_images(pathlib.Path(tmp))))


if __name__ == "__main__":
    main()
