/* -*- c++ -*- ----------------------------------------------------------
   mlff2d: pair_style mace as a LAMMPS plugin (maceplugin.so).

   Evaluates a MACE model exported for LAMMPS (TorchScript, the LAMMPS_MACE
   interface of mace-torch, file *.model-lammps.pt) with the same input syntax
   as the ML-MACE build of LAMMPS:

     pair_style mace [no_domain_decomposition] [domain_decomposition] [device cpu|cuda]
     pair_coeff * * model.model-lammps.pt W Se

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

 protected:
  void allocate();
  void load_model(const std::string &path);
  int build_graph(bool images);
  void select_device(const std::string &request);

  torch::jit::Module model;
  bool model_loaded = false;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat64;

  // keyword settings
  enum class Layout { AUTO, DOMAIN, IMAGES };
  Layout layout_request = Layout::AUTO;
  bool use_images = false;    // resolved at init_style
  std::string device_request = "auto";

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

  // timings (s) accumulated over a run, printed by finish()
  double t_graph = 0.0, t_model = 0.0, t_copy = 0.0;
  long n_calls = 0;
};

}    // namespace LAMMPS_NS

#endif
