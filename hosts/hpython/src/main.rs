//! hpython: CPython embedded (pyo3's FFI, libpython) that runs its script under h's sandbox.
//!
//! The sandbox is applied first ([`h_host::start`]); only then is the interpreter initialised,
//! from an isolated configuration: no user site, no `site` import, `PYTHON*` variables ignored,
//! no bytecode written, UTF-8 mode, and a fixed `home`, `program_name` and module search path
//! (resolved at build time) so that getpath searches nothing. The script runs as `__main__`,
//! as `python3 SCRIPT` runs it, with `sys.argv = [SCRIPT, *ARGS]`.

#![cfg_attr(not(test), no_main)]

use std::ffi::{CStr, CString, OsStr};
use std::io::Write as _;
use std::os::fd::IntoRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use h_host::HostProfile;
use h_sandbox::{FsAccess, Limit, Resource};
use pyo3::ffi;

#[cfg_attr(target_arch = "x86_64", path = "generated/seccomp_x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "generated/seccomp_aarch64.rs")]
#[rustfmt::skip]
mod seccomp;

/// The same with the rules of programs granted by `--allow-exec` (filters/programs.toml).
#[cfg_attr(target_arch = "x86_64", path = "generated/seccomp_programs_x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "generated/seccomp_programs_aarch64.rs")]
#[rustfmt::skip]
mod seccomp_programs;

/// The same with the calls that create and execute a process, for `--learn` (filters/learn.toml).
#[cfg_attr(target_arch = "x86_64", path = "generated/seccomp_learn_x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "generated/seccomp_learn_aarch64.rs")]
#[rustfmt::skip]
mod seccomp_learn;

/// The interpreter's files, resolved by build.rs from the Python executable (`H_PYTHON`).
mod resolved {
    include!(concat!(env!("OUT_DIR"), "/runtime_files.rs"));
}

/// The interpreter's layout (prefix, executable, search path), resolved by build.rs.
mod layout {
    include!(concat!(env!("OUT_DIR"), "/python_layout.rs"));
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The memory budget (`-m`): `data`, which counts the heap, pymalloc's arenas and thread stacks;
/// past it an allocation fails and the script gets MemoryError.
const MEMORY: u64 = GIB;
/// glibc reserves a 64 MiB arena per thread (PROT_NONE until used) and every thread an 8 MiB
/// stack: address space for the task budget's threads beyond the memory itself.
const ADDRESS_SPACE_BEYOND_MEMORY: u64 = 4 * GIB;

/// Default limits: what CPython needs, and zero for everything it does not (memory: see
/// `MEMORY`; threads: see `TASKS`).
const RLIMITS: &[(Resource, Limit)] = &[
    (Resource::Core, Limit::Value(0)),         // no core dumps of the script's memory
    (Resource::Cpu, Limit::Value(60)),         // seconds of CPU; -r cpu=inf for long jobs
    (Resource::Fsize, Limit::Value(64 * MIB)), // room for ordinary output redirected to a file
    (Resource::Locks, Limit::Value(0)),
    (Resource::Memlock, Limit::Value(0)),
    (Resource::Msgqueue, Limit::Value(0)),
    (Resource::Nice, Limit::Value(0)),
    (Resource::Nofile, Limit::Value(64)), // stdio, the script, imports in flight, an asyncio loop
    (Resource::Rss, Limit::Value(0)),     // not enforced by Linux; zero documents intent
    (Resource::Rtprio, Limit::Value(0)),
    (Resource::Rttime, Limit::Value(0)),
    (Resource::Sigpending, Limit::Value(0)),
    (Resource::Stack, Limit::Value(8 * MIB)), // CPython's recursion limit (1000) stops first
];

/// The task budget: the main thread and up to 15 more (threading, ThreadPoolExecutor's default
/// on a small machine, asyncio.to_thread); no processes (the filter refuses them).
const TASKS: u64 = 16;

/// Devices every Python program may read, on top of the resolved interpreter files.
const DEVICES: &[(&str, FsAccess, &str)] = &[
    ("/dev/null", FsAccess::ReadWrite, "reading nothing, and discarding output"),
    ("/dev/urandom", FsAccess::Read, "randomness for scripts that read it as a file"),
];

// An empty resolved table does not compile.
const _: () = assert!(!resolved::RUNTIME_FILES.is_empty(), "hpython: the resolved runtime table is empty");

fn interpreter_version() -> String {
    // SAFETY: Py_GetVersion needs no initialised interpreter; it returns a static C string.
    let version = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) };
    let version = version.to_string_lossy();
    let number = version.split_whitespace().next().unwrap_or(layout::PYTHON_VERSION);
    match env!("H_PYTHON_LINKING") {
        "static" => format!("Python {number}, {} linked in", env!("H_LIBPYTHON")),
        _ => format!("Python {number}, {}", env!("H_LIBPYTHON")),
    }
}

static PROFILE: HostProfile = HostProfile {
    name: "hpython",
    language: "Python",
    interpreter_version,
    rlimits: RLIMITS,
    runtime_files: resolved::RUNTIME_FILES,
    devices: DEVICES,
    seccomp: &seccomp::PROGRAM,
    refused_variables: &[],
    probes: &[("/etc/localtime", "CPython's time module reads the local time zone at start (UTC without -l)")],
    tasks: TASKS,
    memory: MEMORY,
    runs_programs: false,
    seccomp_with_programs: Some(&seccomp_programs::PROGRAM),
    seccomp_learning: Some(&seccomp_learn::PROGRAM),
    creates_processes: false,
    address_space_beyond_memory: ADDRESS_SPACE_BEYOND_MEMORY,
};

/// Exit status for an uncaught error in the script (SPEC).
const SCRIPT_ERROR: u8 = 2;
/// Exit status when flushing stdout/stderr fails at the end (as CPython's own `python3`).
const FLUSH_FAILED: u8 = 120;

/// Runs the script as `__main__`, as `python3 SCRIPT` runs a source file: `__file__` set,
/// parsed from the file (PEP 263 coding cookies honoured) with the script's name, then executed
/// in the real `__main__` module's namespace. Never as bytecode, whatever the file holds: a
/// `.pyc` name or magic number is compiled as source (marshal is not for untrusted data).
///
/// Not through the builtin `compile()`: its first call creates the `ast` module's 119 node types
/// (it checks whether the source is an AST), which cost about 0.8 ms of start-up and
/// finalisation; the C parser used here builds no Python object until the code object.
///
/// Returns whether the script ended without an uncaught exception. An uncaught exception is
/// printed by `sys.excepthook` (the script's own frames only); `SystemExit` ends the process
/// inside `PyErr_Print`, after CPython's own finalisation, with its status.
fn run_script(script: &Path) -> bool {
    let Ok(name) = CString::new(script.as_os_str().as_bytes()) else {
        return false; // a path never holds a NUL byte
    };
    // SAFETY: the interpreter is initialised and this thread holds the GIL. `__main__` exists
    // after initialisation; AddModule and GetDict return borrowed references; the new name is
    // released once stored (the dictionary keeps its own reference).
    let namespace = unsafe {
        let main = ffi::PyImport_AddModule(c"__main__".as_ptr());
        let namespace = if main.is_null() { main } else { ffi::PyModule_GetDict(main) };
        let file_name = ffi::PyUnicode_DecodeFSDefault(name.as_ptr());
        let stored = !namespace.is_null()
            && !file_name.is_null()
            && ffi::PyDict_SetItemString(namespace, c"__file__".as_ptr(), file_name) == 0
            && ffi::PyDict_SetItemString(namespace, c"__cached__".as_ptr(), ffi::Py_None()) == 0;
        ffi::Py_XDECREF(file_name);
        if !stored {
            ffi::PyErr_Print();
            return false;
        }
        namespace
    };
    let descriptor = match std::fs::File::open(script) {
        Ok(file) => file.into_raw_fd(),
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "hpython: can't open file {:?}: {error}", script.as_os_str());
            return false;
        }
    };
    // SAFETY: the descriptor is ours and open; on success the FILE owns it, else it is closed here.
    let stream = unsafe { libc::fdopen(descriptor, c"rb".as_ptr()) };
    if stream.is_null() {
        // SAFETY: fdopen failed, so the descriptor is still ours alone.
        unsafe { libc::close(descriptor) };
        let _ = writeln!(std::io::stderr(), "hpython: can't read file {:?}", script.as_os_str());
        return false;
    }
    // SAFETY: as above; PyRun_FileExFlags takes the live FILE and closes it (closeit = 1) after
    // parsing; its result is a new reference, or null with an exception set.
    unsafe {
        let result = ffi::PyRun_FileExFlags(
            stream,
            name.as_ptr(),
            ffi::Py_file_input,
            namespace,
            namespace,
            1,
            std::ptr::null_mut(),
        );
        if result.is_null() {
            ffi::PyErr_Print();
            return false;
        }
        ffi::Py_DECREF(result);
    }
    true
}

fn c_string(host_error: &str, bytes: &[u8]) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{host_error} contains a NUL byte"))
}

/// Turns a failed `PyStatus` into one line.
fn check(status: ffi::PyStatus, what: &str) -> Result<(), String> {
    // SAFETY: PyStatus_Exception only reads the status value.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return Ok(());
    }
    let message = if status.err_msg.is_null() {
        "unknown error".to_string()
    } else {
        // SAFETY: a non-null err_msg is a static C string set by CPython.
        unsafe { CStr::from_ptr(status.err_msg) }.to_string_lossy().into_owned()
    };
    Err(format!("cannot initialise Python ({what}): {message}"))
}

/// Appends a byte path to a wide-string list, decoded as CPython decodes paths (UTF-8 mode,
/// surrogateescape). Only valid after pre-initialisation.
fn append_path(list: *mut ffi::PyWideStringList, path: &OsStr) -> Result<(), String> {
    let bytes = c_string("a module search path", path.as_bytes())?;
    // SAFETY: the pre-initialised runtime decodes a valid NUL-terminated string; the result is
    // PyMem_RawMalloc'ed (or null on failure).
    let wide = unsafe { ffi::Py_DecodeLocale(bytes.as_ptr(), std::ptr::null_mut()) };
    if wide.is_null() {
        return Err(format!("cannot decode the path {}", path.to_string_lossy()));
    }
    // SAFETY: `list` points into a live PyConfig; the list copies the string.
    let status = unsafe { ffi::PyWideStringList_Append(list, wide) };
    // SAFETY: `wide` came from Py_DecodeLocale, which allocates with PyMem_RawMalloc.
    unsafe { ffi::PyMem_RawFree(wide.cast()) };
    check(status, "module search path")
}

/// Initialises CPython from an isolated configuration. The sandbox is already in force.
fn initialise(started: &h_host::Started) -> Result<(), String> {
    // SAFETY: an all-zero PyPreConfig is a valid value to initialise; the Init call fills it.
    let mut preconfig: ffi::PyPreConfig = unsafe { std::mem::zeroed() };
    // SAFETY: `preconfig` is a valid, writable PyPreConfig.
    unsafe { ffi::PyPreConfig_InitIsolatedConfig(&mut preconfig) };
    // UTF-8 mode: the sandbox clears LANG, and the C locale would make print("é") fail.
    preconfig.utf8_mode = 1;
    // SAFETY: called once, before any other initialisation, with a valid preconfig.
    check(unsafe { ffi::Py_PreInitialize(&preconfig) }, "pre-initialisation")?;

    // SAFETY: an all-zero PyConfig is a valid value to initialise; the Init call fills it.
    let mut config: ffi::PyConfig = unsafe { std::mem::zeroed() };
    // SAFETY: `config` is a valid, writable PyConfig.
    unsafe { ffi::PyConfig_InitIsolatedConfig(&mut config) };
    let result = configure_and_start(&mut config, started);
    // SAFETY: `config` was initialised above and is cleared exactly once.
    unsafe { ffi::PyConfig_Clear(&mut config) };
    result
}

fn configure_and_start(config: &mut ffi::PyConfig, started: &h_host::Started) -> Result<(), String> {
    config.site_import = 0; // no site: no dist-packages, no .pth files running code at start
    config.user_site_directory = 0;
    config.use_environment = 0;
    config.write_bytecode = 0;
    config.parse_argv = 0;
    config.safe_path = 1;
    config.install_signal_handlers = 1; // KeyboardInterrupt, BrokenPipeError as in python3
    config.pathconfig_warnings = 0;

    let executable = c_string("the Python executable", layout::PYTHON_EXECUTABLE.as_bytes())?;
    let home = c_string("the Python prefix", layout::PYTHON_PREFIX.as_bytes())?;
    // SAFETY: the field pointers belong to `config`; the strings are valid and copied.
    let status = unsafe { ffi::PyConfig_SetBytesString(config, &mut config.program_name, executable.as_ptr()) };
    check(status, "program_name")?;
    // SAFETY: as above.
    check(unsafe { ffi::PyConfig_SetBytesString(config, &mut config.home, home.as_ptr()) }, "home")?;

    let mut arguments = vec![c_string("the script name", started.script.as_os_str().as_bytes())?];
    for argument in &started.script_args {
        arguments.push(c_string("a script argument", argument.as_bytes())?);
    }
    let mut pointers: Vec<*const std::ffi::c_char> = arguments.iter().map(|argument| argument.as_ptr()).collect();
    let count = ffi::Py_ssize_t::try_from(pointers.len()).map_err(|_| "too many script arguments".to_string())?;
    // SAFETY: `pointers` holds `count` valid C strings that outlive the call; CPython copies them.
    check(unsafe { ffi::PyConfig_SetBytesArgv(config, count, pointers.as_mut_ptr()) }, "argv")?;

    config.module_search_paths_set = 1;
    if started.allow_script_dir {
        // -s: the script's siblings import first, as `python3 SCRIPT` puts its directory first.
        append_path(&mut config.module_search_paths, started.script_dir.as_os_str())?;
    }
    for path in layout::MODULE_SEARCH_PATHS {
        append_path(&mut config.module_search_paths, OsStr::new(path))?;
    }
    // SAFETY: `config` is fully set; CPython copies what it keeps.
    check(unsafe { ffi::Py_InitializeFromConfig(config) }, "startup")
}

h_host::main!(host_main);

/// The host: applies the sandbox, then runs the script; returns the exit status.
fn host_main() -> u8 {
    let started = h_host::start(&PROFILE);
    if let Err(message) = initialise(&started) {
        h_host::fail(PROFILE.name, message);
    }
    h_sandbox::timing::mark("interpreter");
    let succeeded = run_script(&started.script);
    h_sandbox::timing::mark("script");
    // SAFETY: initialised above and finalised once; flushes sys.stdout and sys.stderr.
    let finalised = unsafe { ffi::Py_FinalizeEx() };
    h_sandbox::timing::mark("finalised");
    h_sandbox::timing::report();
    if !succeeded {
        SCRIPT_ERROR
    } else if finalised < 0 {
        FLUSH_FAILED
    } else {
        0
    }
}
