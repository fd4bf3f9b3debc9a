/* ----------------------------------------------------------------------
   mlff2d: pair_style mace (plugin): evaluating the members of a committee (one
   model is a committee of 1) on the graph built by compute(). See pair_mace.h.

   All members run on the one graph that compute() builds per step. In a step
   that evaluates every member, each member's forces on all graph nodes are kept
   in f_member (3 columns per member). Under domain decomposition the forces on
   ghost nodes belong to other atoms' owners: f_member goes through its own
   reverse communication (3K values per atom, pack/unpack_reverse_comm), so that
   sigma_F is computed from each member's total force on an owned atom, exactly
   as the mean force reaches atom->f through LAMMPS's reverse communication. In
   the periodic-image layout the nodes are the local atoms and no ghost holds a
   force, so no communication is needed.
------------------------------------------------------------------------- */

#include "pair_mace.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "memory.h"
#include "utils.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mpi.h>

using namespace LAMMPS_NS;

namespace {
const char *dtype_name(torch::ScalarType t)
{
  return t == torch::kFloat64 ? "float64" : "float32";
}

const char *const COMMITTEE_USAGE =
    "Usage: pair_coeff * * m0.model-lammps.pt m1.model-lammps.pt ... <elements>, then "
    "fix ID all pair N mace sigma_f 0";
}    // namespace

/* ----------------------------------------------------------------------
   load the members; they must share elements, r_max, layers and dtype
------------------------------------------------------------------------- */

void PairMACEPlugin::load_committee(const std::vector<std::string> &paths)
{
  select_device(device_request);
  models.clear();
  model_paths.clear();
  model_loaded = false;
  ModelInfo first;
  for (std::size_t m = 0; m < paths.size(); ++m) {
    ModelInfo info;
    models.push_back(load_model(paths[m], info));
    model_paths.push_back(paths[m]);
    if (m == 0) {
      first = info;
      continue;
    }
    std::string diff;
    if (info.z != first.z)
      diff = fmt::format("elements {} vs {}", element_list(info.z), element_list(first.z));
    else if (info.r_max != first.r_max)
      diff = fmt::format("r_max {} A vs {} A", info.r_max, first.r_max);
    else if (info.num_interactions != first.num_interactions)
      diff = fmt::format("{} vs {} interactions", info.num_interactions, first.num_interactions);
    else if (info.dtype != first.dtype)
      diff = fmt::format("dtype {} vs {}", dtype_name(info.dtype), dtype_name(first.dtype));
    if (!diff.empty())
      error->all(FLERR,
                 "pair_style mace: committee member '{}' differs from '{}' ({}); all members "
                 "must share elements, r_max, num_interactions and dtype\n{}",
                 paths[m], paths[0], diff, COMMITTEE_USAGE);
  }
  r_max = first.r_max;
  num_interactions = first.num_interactions;
  model_z = first.z;
  dtype = first.dtype;
  model_loaded = true;

  const int nmembers = static_cast<int>(models.size());
  comm_reverse = nmembers > 1 ? 3 * nmembers : 0;
  nextra = nmembers > 1 ? 2 + nmembers : 0;
  extra.assign(nextra, 0.0);
  pvector = extra.empty() ? nullptr : extra.data();
  e_member.assign(nmembers, 0.0);
  memory->destroy(f_member);
  memory->destroy(sigma_f);
  nmax_committee = 0;
  if (nmembers > 1 && comm->me == 0)
    utils::logmesg(lmp,
                   "pair_style mace: committee of {} models on one graph ({} forces); sigma_F per "
                   "atom: fix ID all pair N mace sigma_f 0; sigma_E, max sigma_F, member "
                   "energies: compute ID all pair mace\n",
                   nmembers, drive == Drive::MEAN ? "mean" : "first-member");
}

/* ----------------------------------------------------------------------
   one member on the graph of this step
------------------------------------------------------------------------- */

// Member `member` on the shared graph. The model replaces entries of its input dict
// (displaced positions and shifts for the virial), so each member gets a dict of its own
// holding the same tensors; the tensors themselves are not modified.
c10::impl::GenericDict PairMACEPlugin::evaluate(int member, const GraphInputs &in)
{
  c10::Dict<std::string, torch::Tensor> data;
  data.insert("positions", in.positions);
  data.insert("edge_index", in.edge_index);
  data.insert("unit_shifts", in.unit_shifts);
  data.insert("shifts", in.shifts);
  data.insert("cell", in.cell);
  data.insert("node_attrs", in.node_attrs);
  data.insert("batch", in.batch);
  data.insert("ptr", in.ptr);
  std::vector<torch::jit::IValue> inputs{data, in.mask, bool(vflag_global)};
  torch::jit::IValue result;
  try {
    result = models[member].forward(inputs);
  } catch (const std::exception &e) {
    error->one(FLERR, "pair_style mace: evaluation of model {} failed: {}", model_paths[member],
               e.what());
  }
  return result.toGenericDict();
}

// Add `weight` times the member's forces, energy, per-atom energy and virial to LAMMPS's
// accumulators; in a committee step also keep its forces (f_member) and local energy.
void PairMACEPlugin::accumulate(int member, double weight, bool committee, int n_nodes,
                                const c10::impl::GenericDict &out)
{
  auto forces_t = out.at("forces").toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
  auto fa = forces_t.accessor<double, 2>();
  double **f = atom->f;
  for (int k = 0; k < n_nodes; ++k) {
    const int i = atom_of[k];
    for (int c = 0; c < 3; ++c) {
      f[i][c] += weight * fa[k][c];
      if (committee) f_member[i][3 * member + c] = fa[k][c];
    }
  }
  if (eflag_global) {
    const double e =
        out.at("total_energy_local").toTensor().to(torch::kCPU, torch::kFloat64).sum().item<double>();
    eng_vdwl += weight * e;
    if (committee) e_member[member] = e;
  }
  if (weight == 0.0) return;
  if (eflag_atom) {
    auto ne = out.at("node_energy").toTensor().to(torch::kCPU, torch::kFloat64).contiguous();
    auto nea = ne.accessor<double, 1>();
    for (int i = 0; i < atom->nlocal; ++i) eatom[i] += weight * nea[i];
  }
  if (vflag_global) {
    // virials = -dE/d(strain), shape (1, 3, 3); LAMMPS order xx yy zz xy xz yz
    auto v = out.at("virials").toTensor().to(torch::kCPU, torch::kFloat64).reshape({9}).contiguous();
    auto va = v.accessor<double, 1>();
    virial[0] += weight * va[0];
    virial[1] += weight * va[4];
    virial[2] += weight * va[8];
    virial[3] += weight * 0.5 * (va[1] + va[3]);
    virial[4] += weight * 0.5 * (va[2] + va[6]);
    virial[5] += weight * 0.5 * (va[5] + va[7]);
  }
}

/* ----------------------------------------------------------------------
   a step evaluating all members: size and zero the per-member arrays
------------------------------------------------------------------------- */

void PairMACEPlugin::committee_begin()
{
  const int ncol = 3 * static_cast<int>(models.size());
  if (atom->nmax > nmax_committee || !f_member) {
    nmax_committee = std::max(atom->nmax, 1);
    memory->destroy(f_member);
    memory->destroy(sigma_f);
    memory->create(f_member, nmax_committee, ncol, "pair:f_member");
    memory->create(sigma_f, nmax_committee, "pair:sigma_f");
  }
  const int nall = atom->nlocal + atom->nghost;
  if (nall > 0) std::memset(&f_member[0][0], 0, sizeof(double) * nall * ncol);
  std::fill(e_member.begin(), e_member.end(), 0.0);
}

/* ----------------------------------------------------------------------
   after all members: ghost forces to their owners, sigma_F per local atom;
   on energy steps sigma_E, max sigma_F and the member energies (pvector)
------------------------------------------------------------------------- */

void PairMACEPlugin::committee_end()
{
  const int nmembers = static_cast<int>(models.size());
  if (!use_images) comm->reverse_comm(this);
  ++n_committee;

  double local_max = 0.0;
  for (int i = 0; i < atom->nlocal; ++i) {
    const double *fm = f_member[i];
    double mean[3] = {0.0, 0.0, 0.0};
    for (int k = 0; k < nmembers; ++k)
      for (int c = 0; c < 3; ++c) mean[c] += fm[3 * k + c];
    for (double &c : mean) c /= nmembers;
    double var = 0.0;
    for (int k = 0; k < nmembers; ++k)
      for (int c = 0; c < 3; ++c) var += (fm[3 * k + c] - mean[c]) * (fm[3 * k + c] - mean[c]);
    sigma_f[i] = std::sqrt(var / nmembers);
    local_max = std::max(local_max, sigma_f[i]);
  }
  if (!eflag_global) return;

  // compute pair sums pvector over the ranks: global values on rank 0, energies per rank
  std::vector<double> total(nmembers);
  MPI_Allreduce(e_member.data(), total.data(), nmembers, MPI_DOUBLE, MPI_SUM, world);
  double mean = 0.0, var = 0.0, max_sigma_f = 0.0;
  for (double e : total) mean += e / nmembers;
  for (double e : total) var += (e - mean) * (e - mean) / nmembers;
  sigma_e = std::sqrt(var);
  MPI_Allreduce(&local_max, &max_sigma_f, 1, MPI_DOUBLE, MPI_MAX, world);
  extra[0] = comm->me == 0 ? sigma_e : 0.0;
  extra[1] = comm->me == 0 ? max_sigma_f : 0.0;
  for (int k = 0; k < nmembers; ++k) extra[2 + k] = e_member[k];
}

int PairMACEPlugin::pack_reverse_comm(int n, int first, double *buf)
{
  const int ncol = 3 * static_cast<int>(models.size());
  int m = 0;
  for (int i = first; i < first + n; ++i)
    for (int c = 0; c < ncol; ++c) buf[m++] = f_member[i][c];
  return m;
}

void PairMACEPlugin::unpack_reverse_comm(int n, int *list, double *buf)
{
  const int ncol = 3 * static_cast<int>(models.size());
  int m = 0;
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < ncol; ++c) f_member[list[i]][c] += buf[m++];
}

/* ----------------------------------------------------------------------
   sigma_f for fix pair (per local atom, eV/A); sigma_f_flag: its trigger;
   sigma_e: the energy spread (eV) of the last energy step
------------------------------------------------------------------------- */

void *PairMACEPlugin::extract_peratom(const char *name, int &ncol)
{
  ncol = 0;
  if (std::strcmp(name, "sigma_f") != 0) return nullptr;
  if (models.size() < 2)
    error->all(FLERR,
               "pair_style mace: sigma_f needs a committee, several model files in pair_coeff "
               "(before this fix pair); {} model(s) loaded\n{}",
               models.size(), COMMITTEE_USAGE);
  return sigma_f;
}

void *PairMACEPlugin::extract(const char *name, int &dim)
{
  dim = 0;
  if (std::strcmp(name, "sigma_f_flag") == 0) {
    sigma_triggered = true;
    return &sigma_f_flag;
  }
  if (std::strcmp(name, "sigma_e") == 0) return &sigma_e;
  return nullptr;
}

double PairMACEPlugin::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += static_cast<double>(nmax_committee) * (3 * models.size() + 1) * sizeof(double);
  return bytes;
}
