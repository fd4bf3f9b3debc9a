# GPAW build configuration used by `make install` (GPAW_CONFIG=training/dft/gpaw_siteconfig.py).
# Debian packages: libxc-dev, libopenblas-dev, libfftw3-dev (Makefile SYSPKGS). Serial build (no MPI):
# labelling parallelises over structures (`mlff2d label --shard i/N`), not inside one calculation.
compiler = 'g++'
mpi = False
fftw = True
libraries = ['xc', 'fftw3', 'openblas']
