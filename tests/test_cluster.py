"""Slurm job scripts: label shards, distributed training, multi-GPU LAMMPS."""

from __future__ import annotations

import subprocess

import pytest

from mlff2d.cli import main
from mlff2d.cluster import SlurmOptions, label_job, md_job
from mlff2d.errors import InputError


def test_label_array_covers_every_shard():
    text = label_job("cells.extxyz", "vasp", "training/dft/vasp_pbe.yaml", "runs/labels", 8, SlurmOptions())
    assert "#SBATCH --array=0-7" in text
    assert "--shard ${SLURM_ARRAY_TASK_ID}/8" in text
    with pytest.raises(InputError):
        label_job("c", "vasp", "", "s", 0, SlurmOptions())


def test_md_job_sizes_a_100k_atom_cell():
    text = md_job("m.model-lammps.pt", 100_000, "V_Se", 300, 1000, SlurmOptions(nodes=2, gpus_per_node=4))
    nx = int(text.split("-var nx ")[1].split()[0])
    assert 3 * nx * nx >= 100_000
    assert "#SBATCH --ntasks-per-node=4" in text and "in.wse2_defect" in text


def test_scripts_are_valid_bash(tmp_path):
    assert main(["slurm", "md", "--model", "m.pt", "--gpus-per-node", "4", "-o", str(tmp_path)]) == 0
    assert main(["slurm", "label", "s.extxyz", "--shards", "4", "-o", str(tmp_path)]) == 0
    assert (
        main(["slurm", "train", "training/wse2_production.yaml", "--gpus-per-node", "4", "-o", str(tmp_path)])
        == 0
    )
    for f in tmp_path.glob("*.slurm"):
        subprocess.run(["bash", "-n", str(f)], check=True)
    assert main(["slurm", "train", "cfg.yaml", "-o", str(tmp_path)]) == 2  # no GPUs
