/* The jail's native half: what the standard library cannot do, and what must live outside Python.
 *
 * Loaded by the jail (sandbox/_jail.py) only, never by the worker. It gives the jail:
 *
 * - system calls Python 3.11 has no wrapper for: mount/umount2 (a fresh tmpfs when a pair left
 *   files behind), capset (a pair child drops every capability), seccomp (a pair child installs
 *   the strict filter before it runs untrusted code), prctl(PR_SET_DUMPABLE);
 * - the verdict, kept out of reach of the code under test. The per-pair nonce is generated here
 *   and never becomes a Python object; a verdict line can only be written by the one call of
 *   `write_verdict` in the jail's driver function, checked by the identity of the calling frame and
 *   the offset of the calling instruction, once per process. Reading the driver's frame (frames
 *   are not hidden) therefore yields nothing to forge with, and calling `write_verdict` from
 *   anywhere else, even through a builtin callable the driver is tricked into calling, fails;
 * - an audit hook (PEP 578; a C hook cannot be reached or removed from Python), armed by a pair
 *   child once its trusted setup is done and inherited by whatever it forks, which refuses what
 *   would let the code under test rewrite the driver's state or read this module's memory: trace
 *   and profile functions, new code objects and marshal, swapped code or (unittest's) defaults of a
 *   function, ctypes and the test modules of CPython, native extension loading through sqlite,
 *   exec of programs;
 * - the pristine state of the interpreter (module globals, unittest's classes, builtins), taken
 *   once in the jail, restored in a pair child after the solution's top-level code, and checked
 *   after every test method.
 *
 * Every function that would give the code under test anything refuses once the hook is armed or
 * after its one use; the rest only restrict the caller.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#include <marshal.h>

#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

/* ---- state: C statics, which no Python object refers to ------------------------------------ */

static int armed = 0;            /* set by arm() in a pair child, inherited by whatever it forks */
static int reading_trusted = 0;  /* read_trusted_code is unmarshalling a file of the installation */
static int hook_installed = 0;
static int refuse_proc_paths = 0;
static PyObject *forbidden_modules = NULL; /* frozenset of module names */

static PyObject *driver_code = NULL; /* the driver function's code object */
static int write_offset = -1;        /* byte offset of its one call to write_verdict */
static PyObject *driver_frame = NULL;
static int verdict_written = 0;
static char nonce[33];
static int have_nonce = 0;

/* The pristine interpreter: (dict, copy) pairs, and closure cells with their contents. */
static PyObject *pristine = NULL;      /* list of (dict, copy, guarded) */
static PyObject *pristine_cells = NULL; /* list of (cell, contents) */
static PyObject *pristine_builtins = NULL;
static PyObject *graveyard = NULL; /* what a restore replaced: kept alive, so no finalizer runs */
static PyObject *shadow_names = NULL;  /* unittest's machinery: no test instance may hide these */

static PyObject *guarded_functions = NULL; /* ids of unittest's functions: their defaults are fixed */

static PyObject *refuse(PyObject *type, const char *what) {
    PyErr_Format(type, "%s is not allowed in the coderm sandbox", what);
    return NULL;
}

/* ---- system calls ------------------------------------------------------------------------ */

static PyObject *jail_mount(PyObject *self, PyObject *args) {
    const char *source, *target, *fstype, *data;
    unsigned long flags;
    if (!PyArg_ParseTuple(args, "zszkz", &source, &target, &fstype, &flags, &data)) return NULL;
    if (armed) return refuse(PyExc_PermissionError, "mount");
    if (mount(source, target, fstype, flags, data) != 0) return PyErr_SetFromErrnoWithFilename(PyExc_OSError, target);
    Py_RETURN_NONE;
}

static PyObject *jail_umount(PyObject *self, PyObject *args) {
    const char *target;
    int flags;
    if (!PyArg_ParseTuple(args, "si", &target, &flags)) return NULL;
    if (armed) return refuse(PyExc_PermissionError, "umount");
    if (umount2(target, flags) != 0) return PyErr_SetFromErrnoWithFilename(PyExc_OSError, target);
    Py_RETURN_NONE;
}

static PyObject *jail_drop_capabilities(PyObject *self, PyObject *noargs) {
    /* The bounding set first, while CAP_SETPCAP may still be held; then every set to empty. */
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &header, data) != 0) return PyErr_SetFromErrno(PyExc_OSError);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *jail_load_seccomp(PyObject *self, PyObject *arg) {
    /* `arg`: a BPF program as libseccomp exports it, an array of struct sock_filter. */
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) != 0) return NULL;
    if (view.len == 0 || view.len % sizeof(struct sock_filter) != 0 ||
        view.len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "not a seccomp BPF program");
        return NULL;
    }
    struct sock_fprog program = {(unsigned short)(view.len / sizeof(struct sock_filter)), (struct sock_filter *)view.buf};
    int failed = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0;
    PyBuffer_Release(&view);
    if (failed) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *jail_set_dumpable(PyObject *self, PyObject *arg) {
    int value = PyObject_IsTrue(arg);
    if (value < 0) return NULL;
    if (value && armed) return refuse(PyExc_PermissionError, "becoming dumpable");
    if (prctl(PR_SET_DUMPABLE, value, 0, 0, 0) != 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *jail_set_child_subreaper(PyObject *self, PyObject *noargs) {
    /* Without a pid namespace (isolation=rlimits): orphans of sandboxed code come back to the jail. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *jail_read_trusted_code(PyObject *self, PyObject *arg) {
    /* The code object of a .pyc file on a read-only mount (the Python installation, in the jail):
       what the code under test cannot have written. The file is read here, not given as bytes, so
       that marshal never sees data of the caller's. */
    PyObject *path_bytes;
    if (!PyUnicode_FSConverter(arg, &path_bytes)) return NULL;
    int fd = open(PyBytes_AS_STRING(path_bytes), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    Py_DECREF(path_bytes);
    if (fd < 0) return PyErr_SetFromErrnoWithFilenameObject(PyExc_ImportError, arg);
    struct stat status;
    struct statvfs filesystem;
    if (fstat(fd, &status) != 0 || fstatvfs(fd, &filesystem) != 0 || !S_ISREG(status.st_mode) ||
        !(filesystem.f_flag & ST_RDONLY) || status.st_size < 16 || status.st_size > (64 << 20)) {
        close(fd);
        PyErr_Format(PyExc_ImportError, "not bytecode of the installation: %R", arg);
        return NULL;
    }
    char *data = PyMem_Malloc(status.st_size);
    if (data == NULL) {
        close(fd);
        return PyErr_NoMemory();
    }
    Py_ssize_t done = 0;
    while (done < status.st_size) {
        ssize_t n = read(fd, data + done, status.st_size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += n;
    }
    close(fd);
    long magic = PyImport_GetMagicNumber();
    PyObject *code = NULL;
    if (done == status.st_size && memcmp(data, &magic, 4) == 0) {
        /* marshal's audit event lets this one through; the collector is off meanwhile, so no
           finalizer of the caller's can run (and unmarshal data of its own) inside the window. */
        int collecting = PyGC_Disable();
        reading_trusted = 1;
        code = PyMarshal_ReadObjectFromString(data + 16, done - 16);
        reading_trusted = 0;
        if (collecting) PyGC_Enable();
    } else
        PyErr_Format(PyExc_ImportError, "bad bytecode file: %R", arg);
    PyMem_Free(data);
    if (code != NULL && !PyCode_Check(code)) {
        Py_DECREF(code);
        PyErr_Format(PyExc_ImportError, "no code object in %R", arg);
        return NULL;
    }
    return code;
}

/* ---- the verdict ------------------------------------------------------------------------- */

static PyObject *jail_register_driver(PyObject *self, PyObject *args) {
    PyObject *code;
    int offset;
    if (!PyArg_ParseTuple(args, "O!i", &PyCode_Type, &code, &offset)) return NULL;
    if (armed || driver_code != NULL) return refuse(PyExc_PermissionError, "registering a driver");
    Py_INCREF(code);
    driver_code = code;
    write_offset = offset;
    Py_RETURN_NONE;
}

static PyObject *jail_new_nonce(PyObject *self, PyObject *noargs) {
    /* In the jail, before each pair child is forked. */
    unsigned char raw[16];
    if (armed) return refuse(PyExc_PermissionError, "a new nonce");
    if (getrandom(raw, sizeof(raw), 0) != sizeof(raw)) return PyErr_SetFromErrno(PyExc_OSError);
    for (int i = 0; i < 16; i++) snprintf(nonce + 2 * i, 3, "%02x", raw[i]);
    have_nonce = 1;
    Py_RETURN_NONE;
}

static PyObject *jail_check_verdict(PyObject *self, PyObject *args) {
    /* In the jail: the fields after "<nonce> <index> " of a verdict line, or None if it is not
       this pair's. The comparison is done here so that the nonce never becomes a Python object. */
    const char *line;
    Py_ssize_t length;
    int index;
    if (!PyArg_ParseTuple(args, "y#i", &line, &length, &index)) return NULL;
    if (armed || !have_nonce) return refuse(PyExc_PermissionError, "checking a verdict");
    char prefix[64];
    int prefix_length = snprintf(prefix, sizeof(prefix), "%s %d ", nonce, index);
    if (length < prefix_length || memcmp(line, prefix, prefix_length) != 0) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(line + prefix_length, length - prefix_length);
}

static PyFrameObject *current_driver_frame(void) {
    /* The calling Python frame if it is the entered driver frame, else NULL. */
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL || driver_frame == NULL || (PyObject *)frame != driver_frame) return NULL;
    return frame;
}

static PyObject *jail_enter_driver(PyObject *self, PyObject *noargs) {
    /* The driver's first call in a pair child, before any untrusted code runs there. */
    if (!armed || driver_frame != NULL || driver_code == NULL) return refuse(PyExc_PermissionError, "entering the driver");
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) return refuse(PyExc_PermissionError, "entering the driver");
    PyCodeObject *code = PyFrame_GetCode(frame);
    int is_driver = (PyObject *)code == driver_code;
    Py_DECREF(code);
    if (!is_driver) return refuse(PyExc_PermissionError, "entering the driver");
    Py_INCREF(frame);
    driver_frame = (PyObject *)frame;
    Py_RETURN_NONE;
}

static PyObject *jail_write_verdict(PyObject *self, PyObject *args) {
    int fd, index, run, failures, errors;
    const char *outcome;
    /* Checked before the arguments are looked at: nothing of the caller's runs in between. */
    PyFrameObject *frame = current_driver_frame();
    if (frame == NULL || verdict_written || !have_nonce || PyFrame_GetLasti(frame) != write_offset)
        return refuse(PyExc_PermissionError, "writing a verdict");
    verdict_written = 1;
    if (!PyArg_ParseTuple(args, "iisiii", &fd, &index, &outcome, &run, &failures, &errors)) return NULL;
    char line[128];
    int length = snprintf(line, sizeof(line), "%s %d %.1s %d %d %d\n", nonce, index, outcome, run, failures, errors);
    if (length <= 0 || length >= (int)sizeof(line)) return refuse(PyExc_ValueError, "an oversized verdict");
    for (int done = 0; done < length;) {
        ssize_t n = write(fd, line + done, length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return PyErr_SetFromErrno(PyExc_OSError);
        done += (int)n;
    }
    Py_RETURN_NONE;
}

/* ---- the audit hook ---------------------------------------------------------------------- */

static int starts_with(const char *text, const char *prefix) { return strncmp(text, prefix, strlen(prefix)) == 0; }

static int hook_refuse(PyObject *type, const char *event) {
    PyErr_Format(type, "%s is not allowed in the coderm sandbox", event);
    return -1;
}

static int is_proc_path(PyObject *path) {
    /* rlimits mode only (no mount namespace hides /proc): a path naming /proc or a file
       descriptor's magic link, or climbing with "..". Returns -1 on error. */
    if (path == NULL || PyLong_Check(path) || path == Py_None) return 0;
    PyObject *fs = PyOS_FSPath(path);
    if (fs == NULL) return -1;
    PyObject *bytes = NULL;
    if (PyUnicode_Check(fs)) {
        bytes = PyUnicode_EncodeFSDefault(fs);
        Py_DECREF(fs);
        if (bytes == NULL) return -1;
    } else {
        bytes = fs;
    }
    const char *text = PyBytes_AS_STRING(bytes);
    int bad = starts_with(text, "/proc") || starts_with(text, "/dev/fd") || starts_with(text, "/dev/std") ||
              strstr(text, "/proc/") != NULL || strstr(text, "..") != NULL || strcmp(text, "proc") == 0 ||
              starts_with(text, "proc/");
    Py_DECREF(bytes);
    return bad;
}

static int is_forbidden_module(PyObject *name) {
    /* The module, or its top-level package, is in the forbidden set, or is one of CPython's test
       modules (_test*). A name that is not an exact str is refused: no __hash__ of the caller's. */
    if (!PyUnicode_CheckExact(name)) return 1;
    Py_ssize_t length = PyUnicode_GET_LENGTH(name);
    Py_ssize_t dot = PyUnicode_FindChar(name, '.', 0, length, 1);
    if (dot == -2) return -1;
    PyObject *top = PyUnicode_Substring(name, 0, dot >= 0 ? dot : length);
    if (top == NULL) return -1;
    int forbidden = forbidden_modules != NULL ? PySet_Contains(forbidden_modules, top) : 0;
    if (forbidden == 0) {
        PyObject *prefix = PyUnicode_FromString("_test");
        forbidden = prefix == NULL ? -1 : (int)PyUnicode_Tailmatch(top, prefix, 0, PY_SSIZE_T_MAX, -1);
        Py_XDECREF(prefix);
    }
    Py_DECREF(top);
    return forbidden;
}

static int audit_hook(const char *event, PyObject *args, void *data) {
    if (!armed) return 0;
    /* Rewriting the driver's locals or its control flow. */
    if (strcmp(event, "sys.settrace") == 0 || strcmp(event, "sys.setprofile") == 0 ||
        strcmp(event, "sys._setprofileallthreads") == 0 || strcmp(event, "sys._settraceallthreads") == 0)
        return hook_refuse(PyExc_RuntimeError, event);
    /* A hook of the caller's would see every event's arguments; refused silently (RuntimeError). */
    if (strcmp(event, "sys.addaudithook") == 0) return hook_refuse(PyExc_RuntimeError, event);
    /* Code objects built by hand reach arbitrary memory; functions' code and defaults are not
       swapped either (unittest's methods must stay what they are). */
    if (strcmp(event, "code.__new__") == 0 || (starts_with(event, "marshal.load") && !reading_trusted))
        return hook_refuse(PyExc_RuntimeError, event);
    if (strcmp(event, "object.__setattr__") == 0 && PyTuple_GET_SIZE(args) >= 2) {
        PyObject *name = PyTuple_GET_ITEM(args, 1);
        if (!PyUnicode_Check(name)) return 0;
        if (PyUnicode_CompareWithASCIIString(name, "__code__") == 0)
            return hook_refuse(PyExc_RuntimeError, "replacing a function's code");
        if (PyUnicode_CompareWithASCIIString(name, "__defaults__") == 0 ||
            PyUnicode_CompareWithASCIIString(name, "__kwdefaults__") == 0) {
            /* namedtuple sets the defaults of the functions it makes; unittest's stay as they are. */
            PyObject *id = PyLong_FromVoidPtr(PyTuple_GET_ITEM(args, 0));
            int guarded = id != NULL && guarded_functions != NULL ? PySet_Contains(guarded_functions, id) : 0;
            Py_XDECREF(id);
            if (guarded < 0) return -1;
            if (guarded) return hook_refuse(PyExc_RuntimeError, "changing the defaults of unittest's functions");
        }
        return 0;
    }
    /* Native code: ctypes, CPython's test modules, sqlite extensions. */
    if (starts_with(event, "ctypes.") || starts_with(event, "sqlite3.enable_load_extension") ||
        starts_with(event, "sqlite3.load_extension"))
        return hook_refuse(PyExc_RuntimeError, event);
    if (strcmp(event, "import") == 0 && PyTuple_GET_SIZE(args) >= 1) {
        int forbidden = is_forbidden_module(PyTuple_GET_ITEM(args, 0));
        if (forbidden < 0) return -1;
        if (forbidden) {
            PyErr_Format(PyExc_ImportError, "importing %R is not allowed in the coderm sandbox", PyTuple_GET_ITEM(args, 0));
            return -1;
        }
        return 0;
    }
    /* Programs: the seccomp filter refuses execve too; this says why, before a fork is wasted. */
    if (strcmp(event, "os.exec") == 0 || strcmp(event, "os.posix_spawn") == 0 || strcmp(event, "os.spawn") == 0 ||
        strcmp(event, "os.system") == 0 || strcmp(event, "subprocess.Popen") == 0 || strcmp(event, "pty.spawn") == 0)
        return hook_refuse(PyExc_PermissionError, "running another program");
    if (refuse_proc_paths) {
        if ((strcmp(event, "open") == 0 || strcmp(event, "os.chdir") == 0 || strcmp(event, "os.listdir") == 0 ||
             strcmp(event, "os.scandir") == 0) &&
            PyTuple_GET_SIZE(args) >= 1) {
            int bad = is_proc_path(PyTuple_GET_ITEM(args, 0));
            if (bad < 0) return -1;
            if (bad) return hook_refuse(PyExc_PermissionError, "reaching /proc");
        }
        if (strcmp(event, "os.symlink") == 0 || strcmp(event, "os.link") == 0)
            return hook_refuse(PyExc_PermissionError, event);
    }
    return 0;
}

static PyObject *jail_install_audit_hook(PyObject *self, PyObject *args) {
    PyObject *modules;
    int proc_paths;
    if (!PyArg_ParseTuple(args, "O!p", &PyFrozenSet_Type, &modules, &proc_paths)) return NULL;
    if (armed || hook_installed) return refuse(PyExc_PermissionError, "installing the hook again");
    Py_INCREF(modules);
    forbidden_modules = modules;
    refuse_proc_paths = proc_paths;
    if (PySys_AddAuditHook(audit_hook, NULL) != 0) return NULL;
    hook_installed = 1;
    Py_RETURN_NONE;
}

static PyObject *jail_arm(PyObject *self, PyObject *noargs) {
    /* From now on, in this process and all it forks, the hook refuses. There is no way back. */
    if (!hook_installed) return refuse(PyExc_RuntimeError, "arming before the hook is installed");
    armed = 1;
    Py_RETURN_NONE;
}

static PyObject *jail_is_armed(PyObject *self, PyObject *noargs) { return PyBool_FromLong(armed); }

/* ---- the pristine interpreter ------------------------------------------------------------ */

/* An entry of `pristine`: (copy, namespace dict, owner type or None, guarded); `versions` holds
   each namespace's dict version (PEP 509) when it was last known to match its copy, so that an
   untouched namespace costs one comparison. */
#define ENTRY_COPY(entry) PyTuple_GET_ITEM(entry, 0)
#define ENTRY_DICT(entry) PyTuple_GET_ITEM(entry, 1)
#define ENTRY_TYPE(entry) PyTuple_GET_ITEM(entry, 2)
#define ENTRY_GUARDED(entry) (PyTuple_GET_ITEM(entry, 3) == Py_True)
static uint64_t *versions = NULL;

static uint64_t version_of(PyObject *dict) {
#if PY_VERSION_HEX < 0x030D0000
    _Py_COMP_DIAG_PUSH
    _Py_COMP_DIAG_IGNORE_DEPR_DECLS
    return ((PyDictObject *)dict)->ma_version_tag;
    _Py_COMP_DIAG_POP
#else
#error "the jail needs dict versions (PEP 509), gone in Python 3.13"
#endif
}

static int add_cells(PyObject *value, int depth) {
    /* The closure cells of a function, or of the function a staticmethod, classmethod or property
       holds; a closure's own functions are followed (a decorator's wrapper and what it wraps). */
    if (depth > 3 || value == NULL) return 0;
    if (PyFunction_Check(value)) {
        PyObject *closure = PyFunction_GET_CLOSURE(value);
        if (closure == NULL) return 0;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(closure); i++) {
            PyObject *cell = PyTuple_GET_ITEM(closure, i);
            PyObject *contents = PyCell_Check(cell) ? PyCell_GET(cell) : NULL;
            if (contents == NULL) continue;
            PyObject *pair = PyTuple_Pack(2, cell, contents);
            if (pair == NULL || PyList_Append(pristine_cells, pair) != 0) {
                Py_XDECREF(pair);
                return -1;
            }
            Py_DECREF(pair);
            if (add_cells(contents, depth + 1) != 0) return -1;
        }
        return 0;
    }
    static const char *held[] = {"__func__", "fget", "fset", "fdel", NULL};
    int is_wrapper = Py_IS_TYPE(value, &PyStaticMethod_Type) || Py_IS_TYPE(value, &PyClassMethod_Type) ||
                     Py_IS_TYPE(value, &PyProperty_Type);
    for (int i = 0; is_wrapper && held[i] != NULL; i++) {
        PyObject *inner = PyObject_GetAttrString(value, held[i]);
        if (inner == NULL) {
            PyErr_Clear();
            continue;
        }
        int failed = add_cells(inner, depth + 1);
        Py_DECREF(inner);
        if (failed) return -1;
    }
    return 0;
}

static PyObject *namespace_of(PyObject *item, PyObject **owner) {
    /* A module's dict as given, or a class's own dict (not the mappingproxy `vars` shows). */
    *owner = Py_None;
    if (PyDict_Check(item)) return item;
    if (PyType_Check(item) && ((PyTypeObject *)item)->tp_dict != NULL) {
        *owner = item;
        return ((PyTypeObject *)item)->tp_dict;
    }
    PyErr_SetString(PyExc_TypeError, "snapshot_pristine takes dicts and classes");
    return NULL;
}

static PyObject *jail_snapshot_pristine(PyObject *self, PyObject *args) {
    /* namespaces: module dicts and classes to restore after the solution's top-level code;
       guarded: those of them (by identity) also checked after every test method, whose functions'
       closure cells are recorded too; builtins: the builtins dict, copied into each test's globals. */
    PyObject *namespaces, *guarded, *builtins, *shadowed;
    if (!PyArg_ParseTuple(args, "O!O!O!O!", &PyList_Type, &namespaces, &PyList_Type, &guarded, &PyDict_Type, &builtins,
                          &PyFrozenSet_Type, &shadowed))
        return NULL;
    if (armed || pristine != NULL) return refuse(PyExc_PermissionError, "taking the pristine state again");
    pristine = PyList_New(0);
    pristine_cells = PyList_New(0);
    guarded_functions = PySet_New(NULL);
    if (guarded_functions == NULL) return NULL;
    graveyard = PyList_New(0);
    pristine_builtins = PyDict_Copy(builtins);
    versions = PyMem_Calloc(PyList_GET_SIZE(namespaces) + 1, sizeof(uint64_t));
    if (versions == NULL) return PyErr_NoMemory();
    Py_INCREF(shadowed);
    shadow_names = shadowed;
    if (pristine == NULL || pristine_cells == NULL || graveyard == NULL || pristine_builtins == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(namespaces); i++) {
        PyObject *item = PyList_GET_ITEM(namespaces, i), *owner;
        PyObject *dict = namespace_of(item, &owner);
        if (dict == NULL) return NULL;
        int is_guarded = 0;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(guarded); j++) is_guarded |= PyList_GET_ITEM(guarded, j) == item;
        PyObject *copy = PyDict_Copy(dict);
        if (copy == NULL) return NULL;
        PyObject *entry = Py_BuildValue("(NOOO)", copy, dict, owner, is_guarded ? Py_True : Py_False);
        if (entry == NULL || PyList_Append(pristine, entry) != 0) return NULL;
        Py_DECREF(entry);
        versions[PyList_GET_SIZE(pristine) - 1] = version_of(dict);
        if (!is_guarded) continue;
        Py_ssize_t position = 0;
        PyObject *key, *value;
        while (PyDict_Next(dict, &position, &key, &value)) {
            if (add_cells(value, 0) != 0) return NULL;
            PyObject *function = value;
            if (Py_IS_TYPE(value, &PyStaticMethod_Type) || Py_IS_TYPE(value, &PyClassMethod_Type))
                function = PyObject_GetAttrString(value, "__func__");
            else
                Py_INCREF(function);
            if (function == NULL) {
                PyErr_Clear();
                continue;
            }
            if (PyFunction_Check(function)) {
                PyObject *id = PyLong_FromVoidPtr(function);
                if (id == NULL || PySet_Add(guarded_functions, id) != 0) return NULL;
                Py_DECREF(id);
            }
            Py_DECREF(function);
        }
    }
    Py_RETURN_NONE;
}

static int only_str_keys(PyObject *dict) {
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(dict, &position, &key, &value))
        if (!PyUnicode_CheckExact(key)) return 0;
    return 1;
}

static int bury(PyObject *value) { return value == NULL ? 0 : PyList_Append(graveyard, value); }

static int restore_namespace(PyObject *entry) {
    /* Put back one namespace's pristine bindings; returns how many, or -1. */
    PyObject *copy = ENTRY_COPY(entry), *dict = ENTRY_DICT(entry), *owner = ENTRY_TYPE(entry);
    int restored = 0;
    if (!only_str_keys(dict)) {
        PyObject *items = PyDict_Items(dict);
        if (items == NULL || bury(items) != 0) return -1;
        Py_DECREF(items);
        PyDict_Clear(dict);
        if (PyDict_Update(dict, copy) != 0) return -1;
        if (owner != Py_None) PyType_Modified((PyTypeObject *)owner);
        return (int)PyDict_GET_SIZE(copy);
    }
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(copy, &position, &key, &value)) {
        PyObject *current = PyDict_GetItemWithError(dict, key);
        if (current == value) continue;
        if (current == NULL && PyErr_Occurred()) return -1;
        if (bury(current) != 0) return -1;
        /* Through type.__setattr__ for a class, so that its slots and caches follow. */
        int failed = owner != Py_None ? PyObject_SetAttr(owner, key, value) : PyDict_SetItem(dict, key, value);
        if (failed) return -1;
        restored++;
    }
    return restored;
}

static PyObject *jail_restore_pristine(PyObject *self, PyObject *noargs) {
    /* Put back every pristine binding (new ones stay); returns how many were put back. What is
       replaced goes to the graveyard, kept alive, and the collector is off meanwhile, so no
       finalizer of the caller's runs here. Only exact str keys are compared, so no __eq__ of the
       caller's runs either: a namespace holding any other key is reset to its copy as a whole. */
    if (pristine == NULL) return refuse(PyExc_RuntimeError, "restoring before a snapshot");
    int collecting = PyGC_Disable();
    long restored = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pristine); i++) {
        PyObject *entry = PyList_GET_ITEM(pristine, i);
        if (version_of(ENTRY_DICT(entry)) == versions[i]) continue;
        int count = restore_namespace(entry);
        if (count < 0) {
            if (collecting) PyGC_Enable();
            return NULL;
        }
        restored += count;
        versions[i] = version_of(ENTRY_DICT(entry));
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pristine_cells); i++) {
        PyObject *pair = PyList_GET_ITEM(pristine_cells, i);
        PyObject *cell = PyTuple_GET_ITEM(pair, 0), *contents = PyTuple_GET_ITEM(pair, 1);
        PyObject *current = PyCell_GET(cell);
        if (current == contents) continue;
        if (bury(current) != 0) {
            if (collecting) PyGC_Enable();
            return NULL;
        }
        Py_INCREF(contents);
        PyCell_SET(cell, contents);
        Py_XDECREF(current); /* the cell's reference: the graveyard holds its own */
        restored++;
    }
    if (collecting) PyGC_Enable();
    return PyLong_FromLong(restored);
}

static PyObject *jail_pristine_changes(PyObject *self, PyObject *noargs) {
    /* The guarded names whose callable pristine binding was replaced or removed (a tuple of str,
       empty when none was). Data bindings (unittest's maxDiff, say) are a test's to change. */
    if (pristine == NULL) return refuse(PyExc_RuntimeError, "checking before a snapshot");
    PyObject *changed = PyList_New(0);
    if (changed == NULL) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pristine); i++) {
        PyObject *entry = PyList_GET_ITEM(pristine, i);
        if (!ENTRY_GUARDED(entry) || version_of(ENTRY_DICT(entry)) == versions[i]) continue;
        PyObject *copy = ENTRY_COPY(entry), *dict = ENTRY_DICT(entry);
        if (!only_str_keys(dict)) {
            PyObject *name = PyUnicode_FromString("<a key that is not a str>");
            if (name == NULL || PyList_Append(changed, name) != 0) return NULL;
            Py_DECREF(name);
            continue;
        }
        Py_ssize_t position = 0;
        PyObject *key, *value;
        while (PyDict_Next(copy, &position, &key, &value)) {
            if (!PyCallable_Check(value)) continue;
            PyObject *current = PyDict_GetItemWithError(dict, key);
            if (current == value) continue;
            if (current == NULL && PyErr_Occurred()) return NULL;
            if (PyList_Append(changed, key) != 0) return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pristine_cells); i++) {
        PyObject *pair = PyList_GET_ITEM(pristine_cells, i);
        if (PyCell_GET(PyTuple_GET_ITEM(pair, 0)) != PyTuple_GET_ITEM(pair, 1)) {
            PyObject *name = PyUnicode_FromString("<a closure cell>");
            if (name == NULL || PyList_Append(changed, name) != 0) return NULL;
            Py_DECREF(name);
        }
    }
    PyObject *result = PyList_AsTuple(changed);
    Py_DECREF(changed);
    return result;
}

static PyObject *jail_shadowing(PyObject *self, PyObject *args) {
    /* "" if neither the class's own namespace (or the instance's __dict__) binds one of unittest's
       machinery names but those in `allowed` (a tuple of str), else what does; a key that is not
       an exact str counts, as its __eq__ could claim to be any name. */
    PyObject *obj, *allowed;
    if (!PyArg_ParseTuple(args, "OO!", &obj, &PyTuple_Type, &allowed)) return NULL;
    if (shadow_names == NULL) return refuse(PyExc_RuntimeError, "shadowing before a snapshot");
    PyObject *dict;
    if (PyType_Check(obj)) {
        dict = ((PyTypeObject *)obj)->tp_dict;
        Py_XINCREF(dict);
    } else {
        dict = PyObject_GenericGetDict(obj, NULL);
        if (dict == NULL) PyErr_Clear();
    }
    if (dict == NULL || !PyDict_Check(dict)) {
        Py_XDECREF(dict);
        return PyUnicode_FromString("");
    }
    Py_ssize_t position = 0;
    PyObject *key, *value, *found = NULL;
    while (found == NULL && PyDict_Next(dict, &position, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            found = PyUnicode_FromString("a name that is not a str was bound on the test");
            break;
        }
        int machinery = PySet_Contains(shadow_names, key);
        int permitted = machinery > 0 ? PySequence_Contains(allowed, key) : 0;
        if (machinery < 0 || permitted < 0) {
            Py_DECREF(dict);
            return NULL;
        }
        if (machinery && !permitted) found = PyUnicode_FromFormat("the test's %U hides unittest's own", key);
    }
    Py_DECREF(dict);
    return found != NULL ? found : PyUnicode_FromString("");
}

static int is_dunder(PyObject *name) {
    Py_ssize_t length = PyUnicode_GET_LENGTH(name);
    return length > 4 && PyUnicode_READ_CHAR(name, 0) == '_' && PyUnicode_READ_CHAR(name, 1) == '_' &&
           PyUnicode_READ_CHAR(name, length - 1) == '_' && PyUnicode_READ_CHAR(name, length - 2) == '_';
}

static PyObject *jail_test_globals(PyObject *self, PyObject *namespace) {
    /* A test's globals: the solution's names over the jail's copy of the pristine builtins, but for
       those that would hide a builtin (a solution's own `isinstance`, say) and keys that are not an
       exact str (no __eq__ of the caller's runs). */
    if (!PyDict_Check(namespace)) return refuse(PyExc_TypeError, "test_globals of a non-dict");
    if (pristine_builtins == NULL) return refuse(PyExc_RuntimeError, "test_globals before a snapshot");
    /* The builtins copy itself, not a copy of it: the pair child is thrown away after one test. */
    PyObject *globals = PyDict_New();
    if (globals == NULL) return NULL;
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(namespace, &position, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) continue;
        int shadows = is_dunder(key) ? 0 : PyDict_Contains(pristine_builtins, key);
        if (shadows < 0) return NULL;
        if (!shadows && PyDict_SetItem(globals, key, value) != 0) return NULL;
    }
    if (PyDict_SetItemString(globals, "__builtins__", pristine_builtins) != 0) return NULL;
    return globals;
}

static PyObject *jail_dict_get(PyObject *self, PyObject *args) {
    /* dict[name] for an exact str name, comparing only exact str keys: no __eq__ or __hash__ of
       the caller's runs. None when absent. */
    PyObject *dict, *name;
    if (!PyArg_ParseTuple(args, "O!U", &PyDict_Type, &dict, &name)) return NULL;
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(dict, &position, &key, &value)) {
        if (PyUnicode_CheckExact(key) && PyUnicode_Compare(key, name) == 0) {
            Py_INCREF(value);
            return value;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *jail_class_dict(PyObject *self, PyObject *cls) {
    /* A class's own namespace as a new dict, read from the type itself (a metaclass cannot
       intercept it); exact str keys only. */
    if (!PyType_Check(cls)) return refuse(PyExc_TypeError, "class_dict of a non-class");
    PyObject *dict = ((PyTypeObject *)cls)->tp_dict;
    PyObject *copy = PyDict_New();
    if (copy == NULL || dict == NULL) return copy;
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(dict, &position, &key, &value))
        if (PyUnicode_CheckExact(key) && PyDict_SetItem(copy, key, value) != 0) return NULL;
    return copy;
}

static PyMethodDef methods[] = {
    {"mount", jail_mount, METH_VARARGS, "mount(source, target, fstype, flags, data)"},
    {"umount", jail_umount, METH_VARARGS, "umount(target, flags)"},
    {"drop_capabilities", jail_drop_capabilities, METH_NOARGS, "Drop every capability; set no_new_privs."},
    {"load_seccomp", jail_load_seccomp, METH_O, "Install a seccomp BPF program (bytes) on this process."},
    {"set_dumpable", jail_set_dumpable, METH_O, "prctl(PR_SET_DUMPABLE)."},
    {"set_child_subreaper", jail_set_child_subreaper, METH_NOARGS, "prctl(PR_SET_CHILD_SUBREAPER, 1)."},
    {"read_trusted_code", jail_read_trusted_code, METH_O, "The code of a .pyc on a read-only mount."},
    {"register_driver", jail_register_driver, METH_VARARGS, "register_driver(code, write_offset): once, in the jail."},
    {"new_nonce", jail_new_nonce, METH_NOARGS, "A fresh nonce for the next pair (in the jail)."},
    {"check_verdict", jail_check_verdict, METH_VARARGS, "check_verdict(line, index) -> fields or None (in the jail)."},
    {"enter_driver", jail_enter_driver, METH_NOARGS, "The driver's first call in a pair child."},
    {"write_verdict", jail_write_verdict, METH_VARARGS, "The driver's one verdict."},
    {"install_audit_hook", jail_install_audit_hook, METH_VARARGS, "install_audit_hook(forbidden_modules, refuse_proc_paths)."},
    {"arm", jail_arm, METH_NOARGS, "Arm the audit hook in this process and all it forks (for good)."},
    {"is_armed", jail_is_armed, METH_NOARGS, "Whether this process runs untrusted code."},
    {"snapshot_pristine", jail_snapshot_pristine, METH_VARARGS, "snapshot_pristine(namespaces, guarded, builtins, shadowed): once."},
    {"restore_pristine", jail_restore_pristine, METH_NOARGS, "Put back every pristine binding."},
    {"pristine_changes", jail_pristine_changes, METH_NOARGS, "Guarded names whose binding changed."},
    {"test_globals", jail_test_globals, METH_O, "A test's globals from the solution's."},
    {"shadowing", jail_shadowing, METH_VARARGS, "shadowing(class_or_instance, allowed) -> '' or what hides unittest's."},
    {"dict_get", jail_dict_get, METH_VARARGS, "dict_get(dict, name): exact str lookup."},
    {"class_dict", jail_class_dict, METH_O, "A class's own namespace, copied."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jailsys", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__jailsys(void) { return PyModule_Create(&module); }
