//! hlua: a Lua 5.4 interpreter (embedded, vendored) that runs its script under h's sandbox.

use std::process::ExitCode;

use h_host::HostProfile;
use h_sandbox::{FsAccess, Limit, Resource};
use mlua::{Lua, LuaOptions, MultiValue, StdLib, Value};

#[cfg_attr(target_arch = "x86_64", path = "generated/seccomp_x86_64.rs")]
#[cfg_attr(target_arch = "aarch64", path = "generated/seccomp_aarch64.rs")]
#[rustfmt::skip]
mod seccomp;

const MIB: u64 = 1 << 20;

/// Default limits: what a Lua script needs, and zero for everything it does not.
const RLIMITS: &[(Resource, Limit)] = &[
    (Resource::As, Limit::Value(256 * MIB)), // the Lua heap; a memory bomb gets "not enough memory"
    (Resource::Core, Limit::Value(0)),       // no core dumps of the script's memory
    (Resource::Cpu, Limit::Value(60)),       // seconds of CPU; -r cpu=inf for long jobs
    (Resource::Data, Limit::Value(256 * MIB)), // as above, for brk
    (Resource::Fsize, Limit::Value(64 * MIB)), // room for ordinary output redirected to a file
    (Resource::Locks, Limit::Value(0)),
    (Resource::Memlock, Limit::Value(0)),
    (Resource::Msgqueue, Limit::Value(0)),
    (Resource::Nice, Limit::Value(0)),
    (Resource::Nofile, Limit::Value(32)), // stdio, the script, a few open files
    (Resource::Nproc, Limit::Value(0)),   // no processes or threads (seccomp denies them too)
    (Resource::Rss, Limit::Value(0)),     // not enforced by Linux; zero documents intent
    (Resource::Rtprio, Limit::Value(0)),
    (Resource::Rttime, Limit::Value(0)),
    (Resource::Sigpending, Limit::Value(0)),
    (Resource::Stack, Limit::Value(8 * MIB)), // deep Lua recursion hits Lua's own limit first
];

/// The Lua runtime is inside the binary: no runtime files, only the devices a Lua program may read.
const DEVICES: &[(&str, FsAccess, &str)] = &[
    ("/dev/null", FsAccess::Read, "reading nothing"),
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
    root_identity: h_sandbox::RootIdentity::KeepUid0,
};

/// Exit status for an uncaught error in the script (SPEC).
const SCRIPT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let started = h_host::start(&PROFILE);
    // SAFETY: `unsafe_new_with` keeps Lua's C-module loader (package.loadlib, the C searchers),
    // which mlua's safe constructor removes. The SPEC keeps them present so that the kernel,
    // not a Lua-level stub, stops them; the debug library stays out (ALL_SAFE).
    let lua = unsafe { Lua::unsafe_new_with(StdLib::ALL_SAFE, LuaOptions::new()) };
    // Lua's heap stops short of the address-space limit, so a memory bomb ends in Lua's own
    // "not enough memory" error (exit 2) rather than in an allocation failure outside Lua.
    if let Some(Limit::Value(address_space)) = started.rlimit(Resource::As) {
        let heap = address_space.saturating_sub(64 * MIB).max(address_space / 2);
        if let Err(error) = lua.set_memory_limit(usize::try_from(heap).unwrap_or(usize::MAX)) {
            h_host::fail("hlua", format!("cannot limit the Lua heap: {error}"));
        }
    }
    match run(&lua, &started) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hlua: {error}");
            ExitCode::from(SCRIPT_ERROR)
        }
    }
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
        package.set("cpath", format!("{dir}/?.so"))?;
    } else {
        let package: mlua::Table = lua.globals().get("package")?;
        package.set("path", "")?;
        package.set("cpath", "")?;
    }
    let source = std::fs::read(&started.script_path).map_err(mlua::Error::external)?;
    let chunk = lua.load(source).set_name(format!("@{script_name}")).set_mode(mlua::chunk::ChunkMode::Text);
    chunk.call::<MultiValue>(MultiValue::from_vec(varargs))?;
    Ok(())
}
