"""Typed results that round-trip through ``.npz`` (arrays) + ``.json`` (everything else).

The stages' result dataclasses (phonon bands and DOS, MD spectra) inherit :class:`NpzJson`:
``write(path)`` stores array fields (and dicts of arrays) in ``path.npz`` without pickle and the
other fields in ``path.json``; ``read(path)`` rebuilds the object and checks its type.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mlff2d.errors import InputError
from mlff2d.runinfo import atomic_path, atomic_write_text

T = TypeVar("T", bound="NpzJson")


class NpzJson:
    """Mixin for dataclasses: ``write(path)`` / ``read(path)`` through ``.npz`` + ``.json``."""

    def write(self, path: str | Path) -> Path:
        """Write to ``path`` (suffix ignored) as ``.npz`` + ``.json``; returns the ``.npz`` path."""
        stem = Path(path).with_suffix("")
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {"__type__": type(self).__name__}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                arrays[f.name] = v
            elif isinstance(v, dict) and v and all(isinstance(x, np.ndarray) for x in v.values()):
                arrays.update({f"{f.name}::{k}": x for k, x in v.items()})
                meta[f"{f.name}::keys"] = list(v)
            else:
                meta[f.name] = v
        with atomic_path(stem.with_suffix(".npz")) as tmp:
            np.savez_compressed(tmp, **arrays)
        atomic_write_text(stem.with_suffix(".json"), json.dumps(meta, indent=1))
        return stem.with_suffix(".npz")

    @classmethod
    def read(cls: type[T], path: str | Path) -> T:
        """Read an object written by :meth:`write`.

        Raises
        ------
        InputError
            If the files are missing or hold another result type.
        """
        stem = Path(path).with_suffix("")
        jpath, npath = stem.with_suffix(".json"), stem.with_suffix(".npz")
        if not (jpath.is_file() and npath.is_file()):
            raise InputError(f"no {cls.__name__} at {stem}(.npz/.json)", "check the path")
        meta = json.loads(jpath.read_text())
        if meta.get("__type__", cls.__name__) != cls.__name__:
            raise InputError(f"{jpath} holds a {meta.get('__type__')}, not a {cls.__name__}")
        kwargs: dict[str, Any] = {}
        with np.load(npath, allow_pickle=False) as data:
            for f in fields(cls):  # type: ignore[arg-type]
                if f.name in data.files:
                    kwargs[f.name] = data[f.name]
                elif f"{f.name}::keys" in meta:
                    kwargs[f.name] = {k: data[f"{f.name}::{k}"] for k in meta[f"{f.name}::keys"]}
                elif f.name in meta:
                    kwargs[f.name] = meta[f.name]
        return cls(**kwargs)

    def __str__(self) -> str:
        parts = []
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                parts.append(f"{f.name}{list(v.shape)}")
            elif isinstance(v, dict):
                parts.append(f"{f.name}={{{', '.join(map(str, v))}}}")
            elif isinstance(v, float):
                parts.append(f"{f.name}={v:.4g}")
            elif isinstance(v, (int, str)):
                parts.append(f"{f.name}={v}")
        return f"{type(self).__name__}({', '.join(parts)})"
