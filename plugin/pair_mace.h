/* -*- c++ -*- ----------------------------------------------------------
   mlff2d: pair_style mace as a LAMMPS plugin (maceplugin.so).

   Evaluates a MACE model exported for LAMMPS (TorchScript, the LAMMPS_MACE
   interface of mace-torch, file *.model-lammps.pt) with the same input syntax
   as the ML-MACE build of LAMMPS:

     pair_style mace [no_domain_decomposition] [domain_decomposition] [device cpu|cuda]
                     [committee mean|first] [symmetrix auto|yes|no] [memory MB]
     pair_coeff * * model.model-lammps.pt W Se
     pair_coeff * * m0.model-lammps.pt m1.model-lammps.pt ... W Se     (a committee)

   A committee (several model files) shares one graph per step and evaluates every
   member on it. Forces, energy, virial and per-atom energy are the members' mean
   (committee mean, the default) or the first member's (committee first: the other
   members are evaluated only on the steps that need the spread, see below). The spread:
   - per atom, sigma_F = sqrt(mean_k |F_k,i - mean_k F_k,i|^2) (eV/A), from each member's
     total force on the atom (ghost contributions reverse-communicated per member):
       fix ID all pair N mace sigma_f 0     -> f_ID (dump column, compute reduce max)
   - global, through  compute ID all pair mace :  c_ID[1] sigma_E (eV, spread of the
     members' total energies), c_ID[2] max sigma_F (eV/A), c_ID[3..K+2] member energies (eV),
     on steps whose energy is tallied (thermo steps).
   With committee first, all members are evaluated on the steps that tally the energy and
   on those that a `fix pair ... sigma_f 1` (trigger flag 1) samples, or on every step if no
   fix pair triggers.

   Two graph layouts:
   - domain decomposition (default with >1 MPI rank, or keyword
     domain_decomposition): local and ghost atoms are all graph nodes, the ghost
     shell is num_interactions*r_max (+ skin) deep, only local node energies
     are summed, and forces on ghosts go back to their owners (newton on).
     Ghosts more than num_interactions hops from a local atom are no nodes, and
     edges into ghosts more than num_interactions-1 hops away are dropped (they
     cannot change a local energy).
   - periodic images (default on 1 rank, or keyword no_domain_decomposition):
     nodes are the local atoms only; a neighbour that is a ghost becomes an edge
     to its owner with an integer cell shift.

   Symmetrix-XL route (pair_mace_symmetrix.cpp): with `symmetrix auto` (default) a
   single model whose X.model.symmetrix/ kernels `mlff2d export` prepared next to X.model
   (pair_coeff names X.model-lammps.pt) is evaluated by Symmetrix-XL instead of
   TorchScript; `symmetrix yes` prepares them if needed, `symmetrix no` keeps mace-torch.
   `memory MB` (default 8192, 0: no limit) bounds its working set per rank: local atoms
   are evaluated in chunks, each with its halo, when the estimate exceeds it.
------------------------------------------------------------------------- */

#ifndef MLFF2D_PAIR_MACE_H
#define MLFF2D_PAIR_MACE_H

#include "pair.h"

#include <torch/script.h>

#include <string>
#include <vector>

namespace LAMMPS_NS {

// Class name differs from ML-MACE's PairMACE so that both can live in one binary.
class PairMACEPlugin : public Pair {
 public:
  PairMACEPlugin(class LAMMPS *);
  ~PairMACEPlugin() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void finish() override;
  void *extract(const char *, int &) override;
  void *extract_peratom(const char *, int &) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;
  double memory_usage() override;

 protected:
  // what a committee's members must share
  struct ModelInfo {
    double r_max = 0.0;
    int num_interactions = 0;
    std::vector<int64_t> z;    // atomic numbers (one-hot order)
    torch::ScalarType dtype = torch::kFloat64;
  };
  // the graph of one step, on the model device (shared by all members)
  struct GraphInputs {
    torch::Tensor positions, edge_index, unit_shifts, shifts, cell, node_attrs, batch, ptr, mask;
  };

  void allocate();
  torch::jit::Module load_model(const std::string &path, ModelInfo &info);
  void load_committee(const std::vector<std::string> &paths);
  static std::string element_list(const std::vector<int64_t> &z);    // "W Se"
  int build_graph(bool images);
  void map_tags();
  int owner(int j);
  GraphInputs graph_inputs();
  c10::impl::GenericDict evaluate(int member, const GraphInputs &in);
  void accumulate(int member, double weight, bool committee, int n_nodes,
                  const c10::impl::GenericDict &out);
  void select_device(const std::string &request);
  void committee_begin();
  void committee_end();
  // Symmetrix-XL route (pair_mace_symmetrix.cpp)
  struct SymmetrixState;
  SymmetrixState *sym = nullptr;    // set when the route is taken
  std::string symmetrix_request = "auto";
  double memory_budget_mb = 8192.0;
  void open_symmetrix();
  void close_symmetrix();
  void compute_symmetrix();
  int symmetrix_graph(int c0, int c1);
  long symmetrix_chunks() const;

  std::vector<torch::jit::Module> models;    // the members (one model: a committee of 1)
  std::vector<std::string> model_paths;
  bool model_loaded = false;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat64;

  // keyword settings
  enum class Layout { AUTO, DOMAIN, IMAGES };
  Layout layout_request = Layout::AUTO;
  bool use_images = false;    // resolved at init_style
  std::string device_request = "auto";
  enum class Drive { MEAN, FIRST };
  Drive drive = Drive::MEAN;    // committee forces: members' mean or first member's

  // model metadata
  double r_max = 0.0;
  int num_interactions = 0;
  std::vector<int64_t> model_z;       // atomic numbers known to the model (one-hot order)
  std::vector<int> type_to_index;     // LAMMPS type (1..ntypes) -> one-hot column

  // graph buffers, reused between steps (CPU, float64 / int64)
  std::vector<int64_t> edge_count;    // per node, then prefix sums (size n_nodes + 1)
  std::vector<int> tag_to_local;      // images layout: tag -> local index
  std::vector<int> hop;               // domain layout: edges from the nearest local atom
  std::vector<int> node_of, atom_of;  // atom index <-> graph node
  torch::Tensor edge_index, unit_shifts, shifts, positions, node_attrs, cell, batch, ptr, mask;

  // committee spread
  int sigma_f_flag = 0;             // set by `fix pair ... sigma_f 1` on the steps it samples
  bool sigma_triggered = false;     // a fix pair uses that trigger
  int nmax_committee = 0;           // rows of f_member and sigma_f
  double **f_member = nullptr;      // per atom (local + ghost): member k's force in columns 3k..3k+2
  double *sigma_f = nullptr;        // per local atom: force spread (eV/A)
  std::vector<double> e_member;     // per member: energy of the local atoms (eV)
  std::vector<double> extra;        // pvector: sigma_E, max sigma_F, member energies
  double sigma_e = 0.0;             // spread of the members' total energies (eV)

  // timings (s) accumulated over a run, printed by finish()
  double t_graph = 0.0, t_model = 0.0, t_copy = 0.0;
  long n_calls = 0, n_committee = 0;
};

}    // namespace LAMMPS_NS

#endif
