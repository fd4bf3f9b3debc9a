/* ----------------------------------------------------------------------
   mlff2d: pair_style mace (plugin), the Symmetrix-XL route. See pair_mace.h.

   When the model file of pair_coeff, X.model-lammps.pt, has Symmetrix-XL kernels
   prepared by `mlff2d export` (X.model.symmetrix/ next to X.model), each step's graph
   goes to Symmetrix-XL's evaluator (libmlff2d_symmetrix.so, symmetrix_bridge.cpp, then
   mlff2d.lammps.symmetrix_route) instead of the TorchScript model.

   The graph of a step, per chunk of local atoms (all of them unless the working set
   would exceed the `memory` budget):
   - nodes: the chunk's atoms first (their energies count), then the halo, the atoms
     within r_max of a chunk atom (their first-layer features feed the second layer);
   - edges: every neighbour within r_max of every node, receiver-major, with the vector
     x_neighbour - x_receiver. Periodic-image layout: a ghost neighbour is the node of
     its owner; domain layout: ghosts are nodes themselves.
   Forces -dE/dxyz of each edge go to the receiver (-) and to the neighbour atom (+), a
   ghost's to its owner through LAMMPS's reverse communication (newton on).
   One chunk with no halo (one rank, periodic images, within budget) runs Symmetrix-XL's
   compiled whole-graph kernels; otherwise its layer-by-layer evaluator.
------------------------------------------------------------------------- */

#include "pair_mace.h"
#include "symmetrix_bridge.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "neigh_list.h"
#include "utils.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <dlfcn.h>
#include <mpi.h>
#include <unistd.h>

using namespace LAMMPS_NS;

namespace {

const char *const BRIDGE = "libmlff2d_symmetrix.so";
mlff2d_symmetrix_open_t sym_open = nullptr;
mlff2d_symmetrix_compute_t sym_compute = nullptr;
mlff2d_symmetrix_close_t sym_close = nullptr;
// working sets of Symmetrix-XL's evaluators per neighbour-list entry (bytes), for the memory
// budget, measured with the GPAW architecture (32 channels, L = 1, float64; 43 entries per atom
// within r_max + 2 A skin) and rounded up: whole graph ~800 B (peak RSS growth 34 KB/atom),
// layer by layer ~5.5 KB
constexpr double WHOLE_BYTES_PER_EDGE = 1024.0;
constexpr double LAYERED_BYTES_PER_EDGE = 8192.0;

// loads libmlff2d_symmetrix.so from this library's folder once; false with the reason
bool load_bridge(std::string &why)
{
  static bool tried = false;
  static std::string error;
  if (!tried) {
    tried = true;
    Dl_info info;
    std::string dir = ".";
    if (dladdr(reinterpret_cast<void *>(&load_bridge), &info) && info.dli_fname) {
      dir = info.dli_fname;
      dir = dir.substr(0, dir.rfind('/'));
    }
    const std::string path = dir + "/" + BRIDGE;
    void *lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char *e = dlerror();
      error = access(path.c_str(), F_OK) == 0
          ? fmt::format("cannot load {}: {}", BRIDGE, e ? e : "")
          : "the plugin was built without the Python headers (no " + std::string(BRIDGE) + ")";
    } else {
      sym_open = reinterpret_cast<mlff2d_symmetrix_open_t>(dlsym(lib, "mlff2d_symmetrix_open"));
      sym_compute = reinterpret_cast<mlff2d_symmetrix_compute_t>(dlsym(lib, "mlff2d_symmetrix_compute"));
      sym_close = reinterpret_cast<mlff2d_symmetrix_close_t>(dlsym(lib, "mlff2d_symmetrix_close"));
      if (!sym_open || !sym_compute || !sym_close) error = std::string(BRIDGE) + " is incomplete";
    }
  }
  why = error;
  return error.empty();
}

double seconds_since(const std::chrono::steady_clock::time_point &t0)
{
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}    // namespace

struct PairMACEPlugin::SymmetrixState {
  void *handle = nullptr;
  std::vector<int> type_of;    // LAMMPS type -> Symmetrix type index
  // the graph of one chunk
  std::vector<int> node_atom, node_of, rep, node_types, num_neigh, neigh_index, neigh_types, neigh_atom;
  std::vector<double> xyz, r, energies, forces;
  long n_chunks = 0;
};

/* ----------------------------------------------------------------------
   choose the route at pair_coeff: Symmetrix-XL if requested or prepared
------------------------------------------------------------------------- */

void PairMACEPlugin::open_symmetrix()
{
  close_symmetrix();
  std::string why;
  if (symmetrix_request == "no") why = "symmetrix no";
  else if (models.size() > 1) why = "committees run on mace-torch";
  else if (!device.is_cpu()) why = "it runs on the CPU, not " + device.str();
  void *handle = nullptr;
  double rc = 0.0;
  int z[128], nz = 128;
  // Symmetrix's OpenMP threads: LAMMPS's thread count (OMP_NUM_THREADS, else 1), as for torch
  setenv("OMP_NUM_THREADS", std::to_string(std::max(comm->nthreads, 1)).c_str(), 0);
  // rank 0 first: with `symmetrix yes` it prepares the kernels that the other ranks then load
  for (int turn = 0; turn < 2; ++turn) {
    if (why.empty() && (comm->me == 0) == (turn == 0) && load_bridge(why)) {
      char msg[1024] = "";
      const char *dt = dtype == torch::kFloat64 ? "float64" : "float32";
      handle = sym_open(model_paths.front().c_str(), dt, symmetrix_request.c_str(), &rc, z, &nz,
                        msg, sizeof(msg));
      why = msg;
    }
    MPI_Barrier(world);
  }
  // LAMMPS type -> Symmetrix type index, by atomic number
  std::vector<int> type_of(atom->ntypes + 1, 0);
  bool same = handle && std::fabs(rc - r_max) < 1e-6 && nz == static_cast<int>(model_z.size());
  for (int t = 1; same && t <= atom->ntypes; ++t) {
    const int *k = std::find(z, z + nz, static_cast<int>(model_z[type_to_index[t]]));
    same = k != z + nz;
    if (same) type_of[t] = static_cast<int>(k - z);
  }
  if (handle && !same) {
    why = fmt::format("its model ({} elements, r_max {} A) is not the TorchScript model's", nz, rc);
    sym_close(handle);
    handle = nullptr;
  }
  // every rank takes the same route
  int ok = handle ? 1 : 0, all_ok = 0;
  MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, world);
  if (!all_ok && handle) {
    sym_close(handle);
    handle = nullptr;
    why = "another MPI rank could not open it";
  }
  if (!handle) {
    if (symmetrix_request == "yes")
      error->all(FLERR, "pair_style mace symmetrix yes: Symmetrix-XL route unavailable: {}", why);
    if (comm->me == 0) utils::logmesg(lmp, "pair_style mace: mace-torch route (Symmetrix-XL: {})\n", why);
    return;
  }
  sym = new SymmetrixState;
  sym->handle = handle;
  sym->type_of = type_of;
  if (comm->me == 0) utils::logmesg(lmp, "pair_style mace: Symmetrix-XL route ({})\n", why);
}

void PairMACEPlugin::close_symmetrix()
{
  if (!sym) return;
  if (sym->handle && sym_close) sym_close(sym->handle);
  delete sym;
  sym = nullptr;
}

/* ----------------------------------------------------------------------
   the graph of local atoms [c0, c1) and their halo; returns the number of nodes
------------------------------------------------------------------------- */

int PairMACEPlugin::symmetrix_graph(int c0, int c1)
{
  SymmetrixState &s = *sym;
  double **x = atom->x;
  const int *type = atom->type;
  const int nlocal = atom->nlocal, nall = nlocal + atom->nghost;
  const double rc2 = r_max * r_max;
  // the node that stands for atom j: its owner (periodic images) or itself (domain)
  if (use_images) {
    map_tags();
    s.rep.resize(nall);
    for (int j = 0; j < nall; ++j) s.rep[j] = owner(j);
  }
  auto rep = [&](int j) { return use_images ? s.rep[j] : j; };
  auto within = [&](int i, int j) {
    const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
    return dx * dx + dy * dy + dz * dz < rc2;
  };
  s.node_of.assign(nall, -1);
  s.node_atom.clear();
  for (int i = c0; i < c1; ++i) {
    s.node_of[i] = static_cast<int>(s.node_atom.size());
    s.node_atom.push_back(i);
  }
  for (int i = c0; i < c1; ++i) {
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const int a = rep(j);
      if (s.node_of[a] < 0 && within(i, j)) {
        s.node_of[a] = static_cast<int>(s.node_atom.size());
        s.node_atom.push_back(a);
      }
    }
  }
  const int n_nodes = static_cast<int>(s.node_atom.size());
  s.node_types.resize(n_nodes);
  s.num_neigh.assign(n_nodes, 0);
  s.neigh_index.clear();
  s.neigh_types.clear();
  s.neigh_atom.clear();
  s.xyz.clear();
  s.r.clear();
  for (int k = 0; k < n_nodes; ++k) {
    const int i = s.node_atom[k];
    s.node_types[k] = s.type_of[type[i]];
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double d2 = dx * dx + dy * dy + dz * dz;
      if (d2 >= rc2) continue;
      ++s.num_neigh[k];
      s.neigh_index.push_back(std::max(s.node_of[rep(j)], 0));
      s.neigh_types.push_back(s.type_of[type[j]]);
      s.neigh_atom.push_back(j);
      s.xyz.insert(s.xyz.end(), {dx, dy, dz});
      s.r.push_back(std::sqrt(d2));
    }
  }
  return n_nodes;
}

/* ----------------------------------------------------------------------
   one step on the Symmetrix-XL route
------------------------------------------------------------------------- */

void PairMACEPlugin::compute_symmetrix()
{
  SymmetrixState &s = *sym;
  const int nlocal = atom->nlocal;
  double **f = atom->f;
  // chunks: the estimated working set within the budget. One rank with periodic images
  // evaluates the whole graph if it fits; otherwise (halo nodes) layer by layer, in chunks.
  double edges_mb = 0.0;
  for (int i = 0; i < nlocal; ++i) edges_mb += list->numneigh[i];
  edges_mb /= 1048576.0;
  int n_chunks = 1;
  if (memory_budget_mb > 0.0 && !(use_images && WHOLE_BYTES_PER_EDGE * edges_mb <= memory_budget_mb)) {
    n_chunks = std::max(1, static_cast<int>(std::ceil(LAYERED_BYTES_PER_EDGE * edges_mb / memory_budget_mb)));
    n_chunks = std::min(n_chunks, std::max(nlocal, 1));
  }
  for (int c = 0; c < n_chunks; ++c) {
    const int c0 = static_cast<int>(static_cast<long>(nlocal) * c / n_chunks);
    const int c1 = static_cast<int>(static_cast<long>(nlocal) * (c + 1) / n_chunks);
    if (c1 <= c0) continue;
    auto t0 = std::chrono::steady_clock::now();
    mlff2d_symmetrix_graph g;
    g.num_nodes = symmetrix_graph(c0, c1);
    g.num_local = c1 - c0;
    g.num_edges = static_cast<long>(s.r.size());
    g.node_types = s.node_types.data();
    g.num_neigh = s.num_neigh.data();
    g.neigh_index = s.neigh_index.data();
    g.neigh_types = s.neigh_types.data();
    g.xyz = s.xyz.data();
    g.r = s.r.data();
    s.energies.resize(g.num_local);
    s.forces.resize(3 * g.num_edges);
    t_graph += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    char msg[1024] = "";
    if (sym_compute(s.handle, &g, s.energies.data(), s.forces.data(), msg, sizeof(msg)) != 0)
      error->one(FLERR, "pair_style mace: Symmetrix-XL evaluation failed: {}", msg);
    t_model += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < g.num_local; ++k) {
      if (eflag_global) eng_vdwl += s.energies[k];
      if (eflag_atom) eatom[s.node_atom[k]] += s.energies[k];
    }
    long e = 0;
    for (int k = 0; k < g.num_nodes; ++k) {
      const int i = s.node_atom[k];
      for (int n = 0; n < s.num_neigh[k]; ++n, ++e) {
        const double *p = &s.forces[3 * e];
        const int j = s.neigh_atom[e];
        for (int d = 0; d < 3; ++d) {
          f[i][d] -= p[d];
          f[j][d] += p[d];
        }
        if (vflag_global) {
          const double *v = &s.xyz[3 * e];
          virial[0] += v[0] * p[0];
          virial[1] += v[1] * p[1];
          virial[2] += v[2] * p[2];
          virial[3] += 0.5 * (v[0] * p[1] + v[1] * p[0]);
          virial[4] += 0.5 * (v[0] * p[2] + v[2] * p[0]);
          virial[5] += 0.5 * (v[1] * p[2] + v[2] * p[1]);
        }
      }
    }
    t_copy += seconds_since(t0);
    ++s.n_chunks;
  }
}

long PairMACEPlugin::symmetrix_chunks() const
{
  return sym ? sym->n_chunks : 0;
}
