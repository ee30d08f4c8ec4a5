"""Serve requests with one LiteRT interpreter while its replacement loads in the background.

The app-side half of run-time variant selection: when conditions change (battery saver, thermal
throttling, a tighter latency budget) the app re-selects a variant and swaps interpreters. A swap
must not drop or stall a request, so :class:`HotSwapServer` keeps answering with the current
interpreter while the new one is built on a background thread, and switches between two requests
once it is ready. Every request is answered by exactly one interpreter; the log says which.

It is the same design as the minimal loop notebook 07 writes in its cells (load off the request
path, then replace one reference), with bookkeeping for measurement: every request logs its whole
time (``latency_ms``: input conversion, ``set_tensor``, ``invoke``, output) and the model's own time
(``invoke_ms``), so a reader can see when the per-request overhead, not the model, sets the time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.litert_runner import LiteRTModel


@dataclass(frozen=True)
class Served:
    """One answered request: which variant and thread count served it, its whole time
    (``latency_ms``), the ``invoke()`` part of it (``invoke_ms``) and its prediction."""

    index: int
    variant: str
    threads: int
    latency_ms: float
    prediction: int
    invoke_ms: float = float("nan")
    predictions: tuple[int, ...] = ()  # every input's class when the request is a batch

    @property
    def overhead_ms(self) -> float:
        """Time spent around the model: input conversion, copies in and out, Python."""
        return self.latency_ms - self.invoke_ms


@dataclass(frozen=True)
class Swap:
    """One interpreter swap: requested before request ``requested_at``, live from ``live_at``."""

    requested_at: int
    live_at: int
    old: str
    old_threads: int
    new: str
    threads: int
    load_ms: float


def _live(model: LiteRTModel) -> tuple[LiteRTModel, int, int]:
    """What a request needs from the serving model, kept together so one assignment swaps it all."""
    it = model.interpreter
    return model, it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]


def _load(path: Path, threads: int, batch: int) -> LiteRTModel:
    """A model whose input takes ``batch`` rows, resized and allocated once, before it serves."""
    model = LiteRTModel(Path(path), num_threads=threads)
    if batch != 1:
        it = model.interpreter
        detail = it.get_input_details()[0]
        it.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
        it.allocate_tensors()
    return model


def _warm_up(live: tuple[LiteRTModel, int, int]) -> None:
    """Invoke once on zeros, before the model serves."""
    it = live[0].interpreter
    detail = it.get_input_details()[0]
    it.set_tensor(live[1], np.zeros(detail["shape"], detail["dtype"]))
    it.invoke()


class _Loader(threading.Thread):
    def __init__(self, name: str, path: Path, threads: int, batch: int = 1) -> None:
        super().__init__(daemon=True)
        self.variant, self.path, self.threads, self.batch = name, path, threads, batch
        self.model: LiteRTModel | None = None
        self.error: BaseException | None = None
        self.load_ms = 0.0

    def run(self) -> None:
        t0 = time.perf_counter()
        try:
            model = _load(self.path, self.threads, self.batch)
            it = model.interpreter
            detail = it.get_input_details()[0]
            it.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
            it.invoke()  # warm-up: the first invoke's one-time setup happens here, off the request path
            self.model = model
        except BaseException as exc:  # reported to the serving loop, which keeps the old model
            self.error = exc
        self.load_ms = (time.perf_counter() - t0) * 1e3


class HotSwapServer:
    """Answer requests with the current interpreter; swap to a new variant without dropping any.

    ``swap_to(name, path, threads)`` starts loading in the background and returns at once; the next
    ``serve`` call after the load finishes uses the new interpreter. A failed load keeps the old
    interpreter serving and is recorded in ``failed_swaps``; a load overtaken by a newer
    ``swap_to`` is never used and is recorded in ``superseded``. Serving never waits for a load.

    ``batch`` is the number of inputs per request: with ``batch=1`` a request is one input without
    the batch axis; with more, a request is an array of exactly ``batch`` inputs, and every
    interpreter is resized to that batch once, when it is loaded, never on the request path.
    """

    def __init__(self, name: str, path: Path, threads: int, batch: int = 1) -> None:
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}.")
        self.batch = batch
        self.current = (name, threads)
        self._live = _live(_load(Path(path), threads, batch))
        _warm_up(self._live)  # the first request must not pay the interpreter's one-time setup
        self._pending: _Loader | None = None
        self._pending_since = 0
        self.log: list[Served] = []
        self.swaps: list[Swap] = []
        self.failed_swaps: list[tuple[str, str]] = []
        self.superseded: list[str] = []

    @property
    def target(self) -> tuple[str, int]:
        """The (variant, threads) the server is serving or switching to."""
        return (self._pending.variant, self._pending.threads) if self._pending else self.current

    def swap_to(self, name: str, path: Path, threads: int) -> bool:
        """Start loading ``name`` at ``threads`` unless it is already the target. True if a load started."""
        if (name, threads) == self.target:
            return False
        if self._pending is not None:  # a newer decision supersedes a load still in flight: let it
            self.superseded.append(self._pending.variant)  # finish in the background, never use it
            self._pending = None
        self._pending = _Loader(name, Path(path), threads, self.batch)
        self._pending_since = len(self.log)
        self._pending.start()
        return True

    def _maybe_swap(self) -> None:
        loader = self._pending
        if loader is None or loader.is_alive():
            return
        self._pending = None
        if loader.error is not None or loader.model is None:
            self.failed_swaps.append((loader.variant, str(loader.error)))
            return
        self.swaps.append(Swap(self._pending_since, len(self.log), self.current[0], self.current[1], loader.variant,
                               loader.threads, loader.load_ms))
        self._live, self.current = _live(loader.model), (loader.variant, loader.threads)

    def serve(self, x: np.ndarray) -> Served:
        """Answer one request and log it: a single input without the batch axis (``batch=1``), or
        an array of ``batch`` inputs."""
        self._maybe_swap()
        model, in_index, out_index = self._live  # read the one reference once per request
        it = model.interpreter
        x = np.asarray(x)
        if self.batch == 1:
            x = x[None]
        elif len(x) != self.batch:
            raise ValueError(f"this server answers requests of {self.batch} inputs, got {len(x)}.")
        t0 = time.perf_counter_ns()
        it.set_tensor(in_index, model.prepare_input(x))
        t1 = time.perf_counter_ns()
        it.invoke()
        t2 = time.perf_counter_ns()
        logits = it.get_tensor(out_index)
        classes = np.argmax(logits, axis=-1)  # argmax is unchanged by dequantization (scale > 0)
        t3 = time.perf_counter_ns()
        served = Served(len(self.log), self.current[0], self.current[1], (t3 - t0) / 1e6, int(classes[0]),
                        (t2 - t1) / 1e6, tuple(int(c) for c in classes) if self.batch > 1 else ())
        self.log.append(served)
        return served

    def finish(self) -> None:
        """Wait for a load still in flight and apply it (call before reading ``swaps``)."""
        if self._pending is not None:
            self._pending.join()
            self._maybe_swap()
