"""mace-torch checkpoints that a kill left half-written.

mace-torch writes ``checkpoints/<tag>_epoch-<n>.pt`` in place with ``torch.save`` and, unless
``keep_checkpoints`` is set, deletes the previous one first. A ``kill -9`` during that write leaves a
truncated newest file, and ``restart_latest`` would then fail inside ``torch.load`` on every rerun.
Before a (re)start, :func:`set_aside_unreadable` renames such files to ``*.pt.unreadable``: the
restart takes the newest readable checkpoint, or starts from scratch when none is left.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def set_aside_unreadable(folder: str | Path) -> list[Path]:
    """Rename every ``*.pt`` in ``folder`` that ``torch.load`` cannot read to ``*.pt.unreadable``.

    Parameters
    ----------
    folder
        mace-torch's checkpoint folder (``<run>/checkpoints``); a missing folder is fine.

    Returns
    -------
    list of Path
        The new names of the files set aside (empty when every checkpoint reads).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    import torch

    moved = []
    for path in sorted(folder.glob("*.pt")):
        try:
            torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # truncated zip, empty file, pickle error: all unreadable
            target = path.with_name(path.name + ".unreadable")
            path.replace(target)
            moved.append(target)
            logger.warning(
                "checkpoint %s is unreadable (%s; an interrupted write?): set aside as %s; "
                "training continues from the newest readable checkpoint, or from scratch",
                path,
                type(err).__name__,
                target.name,
            )
    return moved
