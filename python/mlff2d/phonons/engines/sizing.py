"""Batch sizing of the batched MACE engine: free memory and the memory of one structure."""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Callable

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

#: Evaluates a list of structures in one forward pass: forces (n_atoms, 3) in eV/Å per structure.
Forward = Callable[[list[Atoms]], list[NDArray[np.float64]]]


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def available_memory_bytes(device: str) -> int:
    """Free memory (bytes) on ``device``: CUDA free memory or the host's ``MemAvailable``."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def choose_batch_size(
    forward: Forward, todo: list[Atoms], device: str, memory_fraction: float, max_batch: int
) -> tuple[int, list[NDArray[np.float64]]]:
    """Choose a batch size while evaluating the first structures of ``todo`` (popped).

    The first structure alone gives the memory per structure, which caps the batch at
    ``memory_fraction`` of the free memory (and at ``max_batch``). On CUDA the cap is used. On
    CPU, where large graphs are not always faster per structure, batch sizes 1, 2, 4, ... up to
    the cap are timed on the next structures and the fastest is kept.

    Parameters
    ----------
    forward
        Evaluates a list of structures in one pass.
    todo
        Structures still to evaluate; those evaluated here are removed from the front.
    device
        ``"cpu"`` or ``"cuda[:n]"``.
    memory_fraction, max_batch
        Fraction of the free memory a batch may use; upper bound of the batch size.

    Returns
    -------
    batch_size
        The chosen number of structures per pass.
    forces
        Forces (eV/Å) of the structures evaluated while choosing, in order.
    """
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _current_rss_bytes()
    out = forward([todo.pop(0)])
    used = (torch.cuda.max_memory_allocated() if cuda else _peak_rss_bytes()) - before
    used = max(used, 1 << 20)
    free = available_memory_bytes(device)
    cap = int(np.clip(memory_fraction * free // used, 1, max_batch))
    best, best_t, size = 1, np.inf, 1
    while not cuda and size <= cap and len(todo) >= size:
        chunk = [todo.pop(0) for _ in range(size)]
        t0 = time.perf_counter()
        out += forward(chunk)
        per = (time.perf_counter() - t0) / size
        if per > 0.95 * best_t:
            break
        best, best_t, size = size, per, size * 2
    batch_size = cap if cuda else best
    logger.info(
        "MACE batch size %d (%.0f MiB per structure, cap %d from %.0f MiB free on %s)",
        batch_size,
        used / 2**20,
        cap,
        free / 2**20,
        device,
    )
    return batch_size, out
