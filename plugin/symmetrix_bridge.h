/* -*- c++ -*- ----------------------------------------------------------
   mlff2d: the C interface of libmlff2d_symmetrix.so, the bridge from pair_style mace
   to Symmetrix-XL's evaluator (mlff2d.lammps.symmetrix_route, through the Python C API
   of the process LAMMPS runs in). Built only where the Python headers are found; the
   pair style opens it with dlopen and runs without the route when it is missing.
------------------------------------------------------------------------- */

#ifndef MLFF2D_SYMMETRIX_BRIDGE_H
#define MLFF2D_SYMMETRIX_BRIDGE_H

extern "C" {

// A graph in Symmetrix's receiver-major layout (see symmetrix_route.py): the first
// num_local nodes are the atoms whose energies count, edge e = (receiver, neighbour)
// with xyz[3e..3e+2] = x_neighbour - x_receiver (A) and r[e] = |xyz|.
struct mlff2d_symmetrix_graph {
  int num_nodes;
  int num_local;
  long num_edges;
  const int *node_types;     // [num_nodes] Symmetrix type index
  const int *num_neigh;      // [num_nodes] edges received per node, in node order
  const int *neigh_index;    // [num_edges] node of the neighbour (0 if it is no node)
  const int *neigh_types;    // [num_edges]
  const double *xyz;         // [3 num_edges]
  const double *r;           // [num_edges]
};

// Opens the route of a *.model-lammps.pt file; request "auto" or "yes". Returns a handle,
// or NULL with the reason in msg (one line). On success msg says which kernels run, r_cut
// is the model's cutoff (A) and z[0..*nz-1] its atomic numbers in type-index order.
typedef void *(*mlff2d_symmetrix_open_t)(const char *lammps_model, const char *dtype,
                                         const char *request, double *r_cut, int *z, int *nz,
                                         char *msg, int msglen);
// Energies of the local nodes (eV, [num_local]) and edge forces -dE/dxyz (eV/A,
// [3 num_edges]). Returns 0, or -1 with the error in msg.
typedef int (*mlff2d_symmetrix_compute_t)(void *handle, const mlff2d_symmetrix_graph *graph,
                                          double *energies, double *edge_forces, char *msg,
                                          int msglen);
typedef void (*mlff2d_symmetrix_close_t)(void *handle);
}

#endif
