/* ----------------------------------------------------------------------
   mlff2d: pair_style mace (plugin). See pair_mace.h for the syntax.

   The model interface is mace-torch's LAMMPS_MACE (mace/calculators/lammps_mace.py):
     forward(data: Dict[str, Tensor], local_or_ghost: Tensor, compute_virials: bool)
       -> {"total_energy_local", "node_energy", "forces", "virials"}
   with data keys positions, edge_index (sender, receiver), unit_shifts, shifts,
   cell, node_attrs (one-hot in the order of the model's atomic_numbers), batch, ptr.
------------------------------------------------------------------------- */

#include "pair_mace.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "utils.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <malloc.h>
#include <mpi.h>

using namespace LAMMPS_NS;

namespace {

const char *const STYLE_USAGE =
    "Usage: pair_style mace [no_domain_decomposition | domain_decomposition] "
    "[device cpu|cuda|auto] [committee mean|first] [symmetrix auto|yes|no] [memory MB]";
const char *const COEFF_USAGE =
    "Usage: pair_coeff * * <model>.model-lammps.pt [<model 2> ...] <element of type 1> ... "
    "<element of type N>";
const char *const EXPORT_HINT =
    "export the trained model for LAMMPS with `mlff2d export` or mace-torch's "
    "create_lammps_model (a *.model-lammps.pt TorchScript file)";

// Element symbols by atomic number (index 0 unused).
const char *const ELEMENTS[] = {
    "",   "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si",
    "P",  "S",  "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu",
    "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru",
    "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr",
    "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",
    "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac",
    "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf",
    "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};
constexpr int N_ELEMENTS = sizeof(ELEMENTS) / sizeof(ELEMENTS[0]);

int atomic_number(const std::string &symbol)
{
  for (int z = 1; z < N_ELEMENTS; ++z)
    if (symbol == ELEMENTS[z]) return z;
  return 0;
}

double seconds_since(const std::chrono::steady_clock::time_point &t0)
{
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// glibc: keep freed tensor buffers in the process instead of returning them to the OS
// after every model evaluation (the page faults otherwise make the cost per atom grow
// with system size). MLFF2D_KEEP_MEMORY=0 turns this off (benchmarks).
void keep_allocator_memory()
{
  const char *env = std::getenv("MLFF2D_KEEP_MEMORY");
  if (env && std::strcmp(env, "0") == 0) return;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}    // namespace

/* ---------------------------------------------------------------------- */

PairMACEPlugin::PairMACEPlugin(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;    // the model returns the virial itself
  centroidstressflag = CENTROID_NOTAVAIL;
  keep_allocator_memory();
}

PairMACEPlugin::~PairMACEPlugin()
{
  close_symmetrix();
  memory->destroy(f_member);
  memory->destroy(sigma_f);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

void PairMACEPlugin::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  memory->create(cutghost, n, n, "pair:cutghost");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) setflag[i][j] = 0;
}

/* ----------------------------------------------------------------------
   pair_style mace [no_domain_decomposition | domain_decomposition] [device cpu|cuda|auto]
------------------------------------------------------------------------- */

void PairMACEPlugin::settings(int narg, char **arg)
{
  layout_request = Layout::AUTO;
  device_request = "auto";
  drive = Drive::MEAN;
  symmetrix_request = "auto";
  memory_budget_mb = 8192.0;
  for (int iarg = 0; iarg < narg; ++iarg) {
    const std::string word = arg[iarg];
    if (word == "no_domain_decomposition") {
      layout_request = Layout::IMAGES;
    } else if (word == "domain_decomposition") {
      layout_request = Layout::DOMAIN;
    } else if (word == "committee") {
      const std::string value = iarg + 1 < narg ? arg[++iarg] : "";
      if (value == "mean") drive = Drive::MEAN;
      else if (value == "first") drive = Drive::FIRST;
      else
        error->all(FLERR, "pair_style mace: committee needs mean or first, not '{}'\n{}", value,
                   STYLE_USAGE);
    } else if (word == "symmetrix") {
      symmetrix_request = iarg + 1 < narg ? arg[++iarg] : "";
      if (symmetrix_request != "auto" && symmetrix_request != "yes" && symmetrix_request != "no")
        error->all(FLERR, "pair_style mace: symmetrix needs auto, yes or no\n{}", STYLE_USAGE);
    } else if (word == "memory") {
      if (iarg + 1 >= narg) error->all(FLERR, "pair_style mace: memory needs a value (MB)\n{}", STYLE_USAGE);
      memory_budget_mb = utils::numeric(FLERR, arg[++iarg], false, lmp);
      if (memory_budget_mb < 0) error->all(FLERR, "pair_style mace: memory must be >= 0 MB\n{}", STYLE_USAGE);
    } else if (word == "device") {
      if (iarg + 1 >= narg) error->all(FLERR, "pair_style mace: device needs a value\n{}", STYLE_USAGE);
      device_request = arg[++iarg];
      if (device_request != "cpu" && device_request != "cuda" && device_request != "auto")
        error->all(FLERR, "pair_style mace: unknown device '{}'\n{}", device_request, STYLE_USAGE);
    } else {
      error->all(FLERR, "pair_style mace: unknown keyword '{}'\n{}", word, STYLE_USAGE);
    }
  }
}

void PairMACEPlugin::select_device(const std::string &request)
{
  const bool have_cuda = torch::cuda::is_available();
  if (request == "cuda" && !have_cuda)
    error->all(FLERR,
               "pair_style mace: device cuda requested but this libtorch has no CUDA or no GPU "
               "is visible\n{}",
               STYLE_USAGE);
  if (request == "cpu" || !have_cuda) {
    device = torch::Device(torch::kCPU);
    return;
  }
  // one GPU per rank on a node, round robin over the visible devices
  MPI_Comm node;
  int node_rank = 0;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, comm->me, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &node_rank);
  MPI_Comm_free(&node);
  const int ndev = static_cast<int>(torch::cuda::device_count());
  device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(node_rank % ndev));
}

/* ----------------------------------------------------------------------
   pair_coeff * * model.model-lammps.pt [model2.model-lammps.pt ...] W Se
   The model files are the leading words that are no element symbols (the last
   ntypes words are always element names).
------------------------------------------------------------------------- */

void PairMACEPlugin::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg < 3 || std::strcmp(arg[0], "*") != 0 || std::strcmp(arg[1], "*") != 0)
    error->all(FLERR, "Incorrect pair_coeff for pair_style mace\n{}", COEFF_USAGE);

  int nmodels = 0;
  while (2 + nmodels < narg && atomic_number(arg[2 + nmodels]) == 0) ++nmodels;
  if (narg - 2 - ntypes >= 1) nmodels = std::min(nmodels, narg - 2 - ntypes);
  if (nmodels == 0)
    error->all(FLERR, "pair_coeff for pair_style mace needs a model file before the element "
               "names\n{}", COEFF_USAGE);
  load_committee(std::vector<std::string>(arg + 2, arg + 2 + nmodels));

  const int nelem = narg - 2 - nmodels;
  if (nelem != ntypes)
    error->all(FLERR,
               "pair_coeff for pair_style mace needs one element per atom type: {} atom types, "
               "{} elements given\n{}",
               ntypes, nelem, COEFF_USAGE);

  const std::string known = element_list(model_z);
  type_to_index.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; ++t) {
    const std::string symbol = arg[1 + nmodels + t];
    const int z = atomic_number(symbol);
    if (z == 0)
      error->all(FLERR, "pair_coeff for pair_style mace: '{}' (atom type {}) is not an element\n{}",
                 symbol, t, COEFF_USAGE);
    for (std::size_t k = 0; k < model_z.size(); ++k)
      if (model_z[k] == z) type_to_index[t] = static_cast<int>(k);
    if (type_to_index[t] < 0)
      error->all(FLERR,
                 "pair_coeff for pair_style mace: element {} (atom type {}) is unknown to the "
                 "model {}, which has: {}\n{}",
                 symbol, t, model_paths.front(), known, COEFF_USAGE);
  }
  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j) setflag[i][j] = 1;
  open_symmetrix();
}

std::string PairMACEPlugin::element_list(const std::vector<int64_t> &z)
{
  std::string out;
  for (auto zz : z) out += std::string(out.empty() ? "" : " ") + ELEMENTS[zz];
  return out;
}

torch::jit::Module PairMACEPlugin::load_model(const std::string &path, ModelInfo &info)
{
  if (!std::ifstream(path).good())
    error->all(FLERR, "pair_style mace: cannot open model file '{}'\n{}", path, COEFF_USAGE);
  torch::jit::Module model;
  try {
    model = torch::jit::load(path, device);
  } catch (const c10::Error &e) {
    error->all(FLERR, "pair_style mace: '{}' is not a TorchScript model ({}); {}\n{}", path,
               utils::split_lines(e.what_without_backtrace()).front(), EXPORT_HINT, COEFF_USAGE);
  } catch (const std::exception &e) {
    error->all(FLERR, "pair_style mace: cannot load '{}' ({}); {}\n{}", path, e.what(),
               EXPORT_HINT, COEFF_USAGE);
  }
  for (const char *name : {"r_max", "num_interactions", "atomic_numbers"})
    if (!model.hasattr(name) || !model.attr(name).isTensor())
      error->all(FLERR, "pair_style mace: '{}' is not a LAMMPS MACE model (no '{}' buffer); {}\n{}",
                 path, name, EXPORT_HINT, COEFF_USAGE);
  if (!model.find_method("forward"))
    error->all(FLERR, "pair_style mace: '{}' has no forward method; {}\n{}", path, EXPORT_HINT,
               COEFF_USAGE);
  model.eval();

  info.r_max = model.attr("r_max").toTensor().to(torch::kCPU).item<double>();
  info.num_interactions =
      static_cast<int>(model.attr("num_interactions").toTensor().to(torch::kCPU).item<int64_t>());
  auto z = model.attr("atomic_numbers").toTensor().to(torch::kCPU, torch::kInt64).contiguous();
  info.z.assign(z.data_ptr<int64_t>(), z.data_ptr<int64_t>() + z.numel());
  for (auto zz : info.z)
    if (zz < 1 || zz >= N_ELEMENTS)
      error->all(FLERR, "pair_style mace: model '{}' has an invalid atomic number {}", path, zz);

  info.dtype = torch::kFloat64;
  for (const auto &p : model.parameters()) {
    if (p.is_floating_point()) {
      info.dtype = p.scalar_type();
      break;
    }
  }
  if (info.dtype != torch::kFloat64 && info.dtype != torch::kFloat32)
    error->all(FLERR, "pair_style mace: model '{}' has dtype {}; float64 or float32 expected", path,
               std::string(c10::toString(info.dtype)));

  if (comm->me == 0)
    utils::logmesg(lmp,
                   "pair_style mace: model {} | r_max {} A | {} interactions | {} elements | {} | "
                   "{}\n",
                   path, info.r_max, info.num_interactions, info.z.size(),
                   info.dtype == torch::kFloat64 ? "float64" : "float32", device.str());
  return model;
}

/* ---------------------------------------------------------------------- */

void PairMACEPlugin::init_style()
{
  if (force->newton_pair == 0)
    error->all(FLERR,
               "pair_style mace requires newton pair on (forces on ghost atoms go back to their "
               "owners)\nUsage: newton on");
  if (!model_loaded) error->all(FLERR, "pair_style mace: no model loaded\n{}", COEFF_USAGE);
  if (layout_request == Layout::IMAGES && comm->nprocs > 1)
    error->all(FLERR,
               "pair_style mace no_domain_decomposition runs on one MPI rank only, not {}; drop "
               "the keyword to use domain decomposition\n{}",
               comm->nprocs, STYLE_USAGE);
  use_images = layout_request == Layout::IMAGES ||
      (layout_request == Layout::AUTO && comm->nprocs == 1);

  if (use_images) {
    ghostneigh = 0;
    neighbor->add_request(this, NeighConst::REQ_FULL);
  } else {
    if (comm->mode != Comm::SINGLE)
      error->all(FLERR, "pair_style mace with domain decomposition needs comm_modify mode single");
    ghostneigh = 1;
    neighbor->add_request(this, NeighConst::REQ_FULL | NeighConst::REQ_GHOST);
    // message passing: a local energy depends on atoms num_interactions * r_max away
    const double needed = num_interactions * r_max + neighbor->skin;
    if (comm->cutghostuser < needed) comm->cutghostuser = needed;
  }
  // a committee reverse-communicates 3 values per member and atom (pair_mace_committee.cpp);
  // LAMMPS sizes its buffers from the top-level style's comm_reverse, which pair_style hybrid
  // fixed before pair_coeff told this style the committee size
  if (force->pair && force->pair != this && force->pair->comm_reverse < comm_reverse)
    force->pair->comm_reverse = comm_reverse;

  if (device.is_cpu() && comm->nthreads > 0 && at::get_num_threads() != comm->nthreads)
    at::set_num_threads(comm->nthreads);

  if (comm->me == 0)
    utils::logmesg(lmp, "pair_style mace: {} graph, ghost cutoff {:.3f} A, {} torch thread(s)\n",
                   use_images ? "periodic-image (no domain decomposition)" : "domain-decomposition",
                   use_images ? r_max + neighbor->skin : comm->cutghostuser,
                   at::get_num_threads());
}

double PairMACEPlugin::init_one(int i, int j)
{
  cutghost[i][j] = cutghost[j][i] = r_max;
  return r_max;
}

/* ----------------------------------------------------------------------
   neighbour list -> graph: count edges per node, prefix-sum, fill through accessors.

   Periodic-image layout: nodes are the local atoms (node = atom index); an edge to a
   ghost neighbour goes to its owner with an integer shift of cell vectors.
   Domain layout: the features of an atom after layer t reach a local energy only if the
   atom is at most num_interactions - t edges away from a local atom. Breadth-first from
   the local atoms gives that hop count; nodes are the atoms with hop <= num_interactions
   (locals first), edges only those into atoms with hop <= num_interactions - 1. The
   local energy, forces and virial are exactly those of the full ghost graph.
   Returns the number of nodes; atom_of[node] is the LAMMPS atom index.
------------------------------------------------------------------------- */

int PairMACEPlugin::build_graph(bool images)
{
  double **x = atom->x;
  const int *type = atom->type;
  const int nlocal = atom->nlocal;
  const int nall = images ? nlocal : nlocal + atom->nghost;
  const int nlist = images ? list->inum : list->inum + list->gnum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  const double rc2 = r_max * r_max;
  const int t_max = num_interactions;

  // 0. hop counts (domain layout) and node numbering
  hop.assign(nall, images ? 0 : t_max + 1);
  for (int i = 0; i < nlocal; ++i) hop[i] = 0;
  for (int level = 1; !images && level <= t_max; ++level) {
    for (int ii = 0; ii < nlist; ++ii) {
      const int i = ilist[ii];
      if (i >= nall || hop[i] != level - 1) continue;
      const int *jlist = firstneigh[i];
      for (int jj = 0; jj < numneigh[i]; ++jj) {
        const int j = jlist[jj] & NEIGHMASK;
        if (j >= nall || hop[j] <= level) continue;
        const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
        if (dx * dx + dy * dy + dz * dz < rc2) hop[j] = level;
      }
    }
  }
  node_of.assign(nall, -1);
  atom_of.clear();
  for (int i = 0; i < nall; ++i)
    if (hop[i] <= t_max) {
      node_of[i] = static_cast<int>(atom_of.size());
      atom_of.push_back(i);
    }
  const int n_nodes = static_cast<int>(atom_of.size());
  // an edge i -> j is kept if j receives messages that matter
  auto receives = [&](int j) { return images || (j < nall && hop[j] < t_max); };

  // 1. count
  edge_count.assign(n_nodes + 1, 0);
  for (int ii = 0; ii < nlist; ++ii) {
    const int i = ilist[ii];
    if (i >= nall || node_of[i] < 0) continue;
    const int *jlist = firstneigh[i];
    int64_t c = 0;
    for (int jj = 0; jj < numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      if (!receives(j)) continue;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz < rc2) ++c;
    }
    edge_count[node_of[i] + 1] = c;
  }
  // 2. prefix sum: edge_count[k] = first edge of node k
  for (int k = 0; k < n_nodes; ++k) edge_count[k + 1] += edge_count[k];
  const int64_t n_edges = edge_count[n_nodes];

  // 3. fill
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  edge_index = torch::empty({2, n_edges}, torch::TensorOptions().dtype(torch::kInt64));
  unit_shifts = torch::zeros({n_edges, 3}, f64);
  shifts = torch::zeros({n_edges, 3}, f64);
  auto ei = edge_index.accessor<int64_t, 2>();
  auto us = unit_shifts.accessor<double, 2>();
  auto sh = shifts.accessor<double, 2>();
  const double *h = domain->h, *hi = domain->h_inv;
  if (images) map_tags();
  for (int ii = 0; ii < nlist; ++ii) {
    const int i = ilist[ii];
    if (i >= nall || node_of[i] < 0) continue;
    const int *jlist = firstneigh[i];
    int64_t e = edge_count[node_of[i]];
    for (int jj = 0; jj < numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      if (!receives(j)) continue;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz >= rc2) continue;
      ei[0][e] = node_of[i];    // sender
      if (!images) {
        ei[1][e] = node_of[j];    // receiver (hop < t_max, so a node)
      } else if (j < nlocal) {
        ei[1][e] = j;
      } else {
        // ghost neighbour -> its owner plus an integer shift of cell vectors
        const int jl = owner(j);
        ei[1][e] = jl;
        const double sx = x[j][0] - x[jl][0], sy = x[j][1] - x[jl][1], sz = x[j][2] - x[jl][2];
        const double na = std::round(hi[0] * sx + hi[5] * sy + hi[4] * sz);
        const double nb = std::round(hi[1] * sy + hi[3] * sz);
        const double nc = std::round(hi[2] * sz);
        us[e][0] = na;
        us[e][1] = nb;
        us[e][2] = nc;
        // cell rows a = (xprd,0,0), b = (xy,yprd,0), c = (xz,yz,zprd)
        sh[e][0] = na * h[0] + nb * h[5] + nc * h[4];
        sh[e][1] = nb * h[1] + nc * h[3];
        sh[e][2] = nc * h[2];
      }
      ++e;
    }
  }

  // nodes
  positions = torch::empty({n_nodes, 3}, f64);
  const int nelem = static_cast<int>(model_z.size());
  node_attrs = torch::zeros({n_nodes, nelem}, f64);
  auto pa = positions.accessor<double, 2>();
  auto na = node_attrs.accessor<double, 2>();
  for (int k = 0; k < n_nodes; ++k) {
    const int i = atom_of[k];
    pa[k][0] = x[i][0];
    pa[k][1] = x[i][1];
    pa[k][2] = x[i][2];
    na[k][type_to_index[type[i]]] = 1.0;
  }
  mask = torch::zeros({n_nodes}, f64);
  mask.narrow(0, 0, nlocal).fill_(1.0);    // locals are nodes 0 .. nlocal-1
  cell = torch::zeros({3, 3}, f64);
  auto c = cell.accessor<double, 2>();
  c[0][0] = h[0];
  c[1][0] = h[5];
  c[1][1] = h[1];
  c[2][0] = h[4];
  c[2][1] = h[3];
  c[2][2] = h[2];
  batch = torch::zeros({n_nodes}, torch::TensorOptions().dtype(torch::kInt64));
  ptr = torch::tensor({int64_t(0), int64_t(n_nodes)}, torch::TensorOptions().dtype(torch::kInt64));
  return n_nodes;
}

// tag -> index of the owned atom (periodic-image layout), for owner()
void PairMACEPlugin::map_tags()
{
  const tagint *tag = atom->tag;
  tagint maxtag = 0;
  for (int i = 0; i < atom->nlocal; ++i) maxtag = std::max(maxtag, tag[i]);
  tag_to_local.assign(maxtag + 1, -1);
  for (int i = 0; i < atom->nlocal; ++i) tag_to_local[tag[i]] = i;
}

// the local atom whose image atom j is
int PairMACEPlugin::owner(int j)
{
  const tagint t = atom->tag[j];
  const int o = (t >= 0 && t < static_cast<tagint>(tag_to_local.size())) ? tag_to_local[t] : -1;
  if (o < 0) error->one(FLERR, "pair_style mace: ghost atom {} has no local owner", t);
  return o;
}

/* ----------------------------------------------------------------------
   one step: build the graph once, evaluate the members on it. A committee
   evaluates all members (committee_begin/end: per-member forces, spread), a
   single model or a `committee first` step that needs no spread only the first.
------------------------------------------------------------------------- */

void PairMACEPlugin::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (vflag_atom)
    error->all(FLERR, "pair_style mace does not compute per-atom virials (compute stress/atom)");

  if (sym) {
    if (atom->nlocal > 0) compute_symmetrix();
    ++n_calls;
    return;
  }
  const int nmembers = static_cast<int>(models.size());
  // the same on every rank: the collectives of committee_end need all ranks
  const bool committee = nmembers > 1 &&
      (drive == Drive::MEAN || !sigma_triggered || sigma_f_flag || eflag_global);
  if (committee) committee_begin();

  // an empty subdomain evaluates nothing (no forces on ghosts) but joins the communication
  if (atom->nlocal > 0) {
    auto t0 = std::chrono::steady_clock::now();
    const int n_nodes = build_graph(use_images);
    const GraphInputs in = graph_inputs();
    t_graph += seconds_since(t0);
    for (int m = 0; m < (committee ? nmembers : 1); ++m) {
      t0 = std::chrono::steady_clock::now();
      const auto out = evaluate(m, in);
      t_model += seconds_since(t0);
      t0 = std::chrono::steady_clock::now();
      const double weight = drive == Drive::FIRST ? (m == 0 ? 1.0 : 0.0) : 1.0 / nmembers;
      accumulate(m, weight, committee, n_nodes, out);
      t_copy += seconds_since(t0);
    }
  }
  if (committee) {
    auto t0 = std::chrono::steady_clock::now();
    committee_end();
    t_copy += seconds_since(t0);
  }
  ++n_calls;
}

PairMACEPlugin::GraphInputs PairMACEPlugin::graph_inputs()
{
  GraphInputs in;
  in.positions = positions.to(device, dtype);
  in.edge_index = edge_index.to(device);
  in.unit_shifts = unit_shifts.to(device, dtype);
  in.shifts = shifts.to(device, dtype);
  in.cell = cell.to(device, dtype);
  in.node_attrs = node_attrs.to(device, dtype);
  in.batch = batch.to(device);
  in.ptr = ptr.to(device);
  in.mask = mask.to(device, dtype);
  return in;
}

void PairMACEPlugin::finish()
{
  if (n_calls > 0 && comm->me == 0) {
    utils::logmesg(lmp,
                   "pair_style mace: {} evaluations on rank 0: graph {:.4f} s, model {:.4f} s, "
                   "results {:.4f} s ({:.2f} ms per evaluation)\n",
                   n_calls, t_graph, t_model, t_copy,
                   1e3 * (t_graph + t_model + t_copy) / static_cast<double>(n_calls));
    if (sym)
      utils::logmesg(lmp, "pair_style mace: Symmetrix-XL evaluated {} chunk(s) in {} evaluations\n",
                     symmetrix_chunks(), n_calls);
    if (models.size() > 1)
      utils::logmesg(lmp, "pair_style mace: committee of {} ({} forces): all members on {} of {} "
                     "evaluations\n", models.size(), drive == Drive::MEAN ? "mean" : "first",
                     n_committee, n_calls);
  }
  t_graph = t_model = t_copy = 0.0;
  n_calls = n_committee = 0;
}

/* ----------------------------------------------------------------------
   entry point of libmlff2d_pair_mace.so, looked up by maceplugin.so
------------------------------------------------------------------------- */

extern "C" __attribute__((visibility("default"))) void *mlff2d_pair_mace_create(void *lmp)
{
  return new PairMACEPlugin(static_cast<LAMMPS *>(lmp));
}
