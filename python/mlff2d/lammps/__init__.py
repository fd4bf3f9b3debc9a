"""LAMMPS coupling: the ``pair_style mace`` plugin, data files, inputs and MD runs."""
