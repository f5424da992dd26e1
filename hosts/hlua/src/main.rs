//! hlua: a Lua 5.4 interpreter (embedded, vendored) that runs its script under h's sandbox.

#![cfg_attr(not(test), no_main)]

use h_host::HostProfile;
use h_sandbox::{FsAccess, Limit, Resource};
use mlua::{Lua, LuaOptions, MultiValue, StdLib, Value};

mod allocator;
mod heap;

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

/// Every allocation of the host, Lua's states' included (mlua allocates them through Rust's).
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator::new();

const MIB: u64 = 1 << 20;

/// The memory budget (`-m`): `data`, and Lua's own heap limit a little below it, so that a memory
/// bomb ends in Lua's "not enough memory" error (exit 2).
const MEMORY: u64 = 256 * MIB;
/// Lua reserves nothing: the address space is the budget plus room for the binary and libc.
const ADDRESS_SPACE_BEYOND_MEMORY: u64 = 256 * MIB;

/// Default limits: what a Lua script needs, and zero for everything it does not (memory: see
/// `MEMORY`; processes: see `TASKS`).
const RLIMITS: &[(Resource, Limit)] = &[
    (Resource::Core, Limit::Value(0)),         // no core dumps of the script's memory
    (Resource::Cpu, Limit::Value(60)),         // seconds of CPU; -r cpu=inf for long jobs
    (Resource::Fsize, Limit::Value(64 * MIB)), // room for ordinary output redirected to a file
    (Resource::Locks, Limit::Value(0)),
    (Resource::Memlock, Limit::Value(0)),
    (Resource::Msgqueue, Limit::Value(0)),
    (Resource::Nice, Limit::Value(0)),
    (Resource::Nofile, Limit::Value(32)), // stdio, the script, a few open files
    (Resource::Rss, Limit::Value(0)),     // not enforced by Linux; zero documents intent
    (Resource::Rtprio, Limit::Value(0)),
    (Resource::Rttime, Limit::Value(0)),
    (Resource::Sigpending, Limit::Value(0)),
    (Resource::Stack, Limit::Value(8 * MIB)), // deep Lua recursion hits Lua's own limit first
];

/// The task budget: the host alone (Lua creates no process or thread; the filter refuses both).
const TASKS: u64 = 1;

/// The Lua runtime is inside the binary: no runtime files, only the devices a Lua program may read.
const DEVICES: &[(&str, FsAccess, &str)] = &[
    ("/dev/null", FsAccess::ReadWrite, "reading nothing, and discarding output"),
    ("/dev/urandom", FsAccess::Read, "randomness for scripts that read it as a file"),
];

fn interpreter_version() -> String {
    let lua = Lua::new();
    lua.globals().get::<String>("_VERSION").unwrap_or_else(|_| "Lua".to_string())
}

static PROFILE: HostProfile = HostProfile {
    name: "hlua",
    language: "Lua",
    interpreter_version,
    rlimits: RLIMITS,
    runtime_files: &[],
    devices: DEVICES,
    seccomp: &seccomp::PROGRAM,
    refused_variables: &[],
    probes: &[],
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

h_host::main!(host_main);

/// The host: applies the sandbox, then runs the script; returns the exit status.
fn host_main() -> u8 {
    let started = h_host::start(&PROFILE);
    // SAFETY: `unsafe_new_with` opens the whole standard library `lua` has, `debug` included:
    // the kernel is the boundary, not the Lua API (forged bytecode and the debug library reach
    // nothing the sandbox has not granted). Native code is the one thing Lua could load that
    // the policy cannot run (no executable mappings of new files), so `prepare_libraries`
    // makes package.loadlib and the C searchers fail at once with a Lua error.
    let lua = unsafe { Lua::unsafe_new_with(StdLib::ALL, LuaOptions::new()) };
    if let Err(error) = prepare_libraries(&lua) {
        h_host::fail("hlua", format!("cannot set up the standard library: {error}"));
    }
    // Lua's heap stops short of the data limit, so a memory bomb ends in Lua's own "not enough
    // memory" error (exit 2) rather than in an allocation failure outside Lua; and an allocation
    // the kernel refuses ends there too (heap.rs).
    let heap = match started.memory {
        Some(memory) => memory.saturating_sub(16 * MIB).max(memory / 2),
        None => u64::MAX,
    };
    if let Err(error) = heap::install(&lua, usize::try_from(heap).unwrap_or(usize::MAX)) {
        h_host::fail("hlua", format!("cannot limit the Lua heap: {error}"));
    }
    h_sandbox::timing::mark("interpreter");
    let result = run(&lua, &started);
    h_sandbox::timing::mark("script");
    h_sandbox::timing::report();
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("hlua: {error}");
            SCRIPT_ERROR
        }
    }
}

/// What `package.loadlib` and the C searchers say: loading a C library would map native code,
/// which this policy never executes; and `loadlib` must not hand out symbols of libraries that
/// are already mapped (libc's `system`, say).
const NO_NATIVE_CODE: &str = "hlua loads no native code (package.loadlib and C modules are disabled)";

/// Run once before the script (one chunk: one compilation).
///
/// Native code: as Lua itself does when it is built without dynamic libraries,
/// `package.loadlib` returns `nil, message, "absent"`, and the C searchers still search
/// `package.cpath` (so `require` lists where it looked, and `cpath` starts empty) but raise an
/// error instead of loading a file they find.
///
/// Locales: musl accepts any locale name and keeps C's conventions under it (no locale data
/// reaches the sandbox), so `os.setlocale("pt_BR")` would say yes and change nothing; a name
/// other than C's, POSIX's and C.UTF-8 gets `nil`, as from a C library without that locale
/// (the query, `nil`, and the environment's, `""`, go through).
const PREPARE_LIBRARIES: &str = r#"
local message = ...
local searchpath = package.searchpath
package.loadlib = function() return nil, message, "absent" end
local function refuse(name, file)
  error(("error loading module '%s' from file '%s':\n\t%s"):format(name, file, message), 3)
end
package.searchers[3] = function(name)
  local file, missing = searchpath(name, package.cpath)
  if not file then return missing end
  refuse(name, file)
end
package.searchers[4] = function(name)
  local root = name:match("^([^.]+)%.")
  if not root then return nil end
  local file, missing = searchpath(root, package.cpath)
  if not file then return missing end
  refuse(name, file)
end
package.cpath = ""
local setlocale = os.setlocale
local honoured = { [""] = true, C = true, POSIX = true, ["C.UTF-8"] = true }
os.setlocale = function(locale, ...)
  if locale ~= nil and not honoured[locale] then return nil end
  return setlocale(locale, ...)
end
"#;

fn prepare_libraries(lua: &Lua) -> mlua::Result<()> {
    lua.load(PREPARE_LIBRARIES).set_name("=hlua").call::<()>(NO_NATIVE_CODE)
}

fn run(lua: &Lua, started: &h_host::Started) -> mlua::Result<()> {
    let script_name = started.script.to_string_lossy().into_owned();
    // `arg` as the lua command fills it: arg[0] the script, arg[1..] its arguments, arg[-1] the host.
    let arg = lua.create_table()?;
    arg.set(-1, "hlua")?;
    arg.set(0, script_name.as_str())?;
    let mut varargs = Vec::new();
    for (position, value) in started.script_args.iter().enumerate() {
        let value = lua.create_string(value.as_encoded_bytes())?;
        arg.set(position + 1, value.clone())?;
        varargs.push(Value::String(value));
    }
    lua.globals().set("arg", arg)?;
    if started.allow_script_dir {
        // require finds the script's siblings (not the current directory's files, as the original did).
        let package: mlua::Table = lua.globals().get("package")?;
        let dir = started.script_dir.to_string_lossy();
        package.set("path", format!("{dir}/?.lua;{dir}/?/init.lua"))?;
    } else {
        let package: mlua::Table = lua.globals().get("package")?;
        package.set("path", "")?;
    }
    let source = std::fs::read(&started.script_path).map_err(mlua::Error::external)?;
    let chunk = lua.load(source).set_name(format!("@{script_name}")).set_mode(mlua::chunk::ChunkMode::Text);
    chunk.call::<MultiValue>(MultiValue::from_vec(varargs))?;
    Ok(())
}
