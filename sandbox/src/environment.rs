//! The script sees only the variables its user named with `--env`, and nothing of the caller's
//! environment is left in the process's memory.
//!
//! Removing a variable (`unsetenv`) only drops libc's pointer: the `NAME=VALUE` strings the
//! kernel copied onto the initial stack stay, readable by any script that can read its own
//! memory (ctypes, forged Lua bytecode). So after the new environment is in place, the original
//! strings are overwritten with zeros, and the argument strings are rewritten to `argv[0]`
//! followed by what the script receives anyway (its name and arguments): the host's own options
//! (`--env NAME=VALUE`, paths) are gone, and `ps`, `pgrep -f` and /proc still show the script. The values are never copied onto the heap on the way: the names are read straight
//! from `environ`, and only values named by `--env` are copied. The embedded hosts (hlua,
//! hpython) need this; hsh and hnode exec their interpreter, whose new stack holds only the
//! new environment, and their supervisor is scrubbed the same way before the fork.

use std::ffi::{CStr, OsString};
use std::os::unix::ffi::OsStringExt;

extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// The names of the current environment, without copying any value.
fn names() -> Vec<OsString> {
    let mut names = Vec::new();
    // SAFETY: `environ` is libc's NULL-terminated array of NUL-terminated strings; the process
    // is single-threaded (apply checked), so nothing changes it while we read.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let bytes = CStr::from_ptr(*entry).to_bytes();
            let name = bytes.split(|&byte| byte == b'=').next().unwrap_or_default();
            names.push(OsString::from_vec(name.to_vec()));
            entry = entry.add(1);
        }
    }
    names
}

pub(crate) fn replace(variables: &[(OsString, OsString)]) {
    for name in names() {
        std::env::remove_var(name);
    }
    for (name, value) in variables {
        std::env::set_var(name, value);
    }
}

extern "C" {
    /// glibc's `argv[0]`, the first byte of the argument strings on the initial stack.
    static program_invocation_name: *mut libc::c_char;
}

/// Where the kernel placed the argument and environment strings (the top of the initial
/// stack): `[arg_start, arg_end)` and `[env_start, env_end)`, read from `argv[0]`, the argument
/// count and the original `environ`, which must not have been changed yet.
pub(crate) struct StringAreas {
    arguments: (usize, usize),
    environment: (usize, usize),
}

/// The original string areas; call before [`replace`].
pub(crate) fn original_areas(argument_count: usize) -> StringAreas {
    // SAFETY: `program_invocation_name` points at argv[0], and the kernel lays out the
    // `argument_count` argument strings one after the other, each NUL-terminated.
    let arguments = unsafe {
        let start = program_invocation_name as usize;
        let mut end = start;
        for _ in 0..argument_count {
            end += CStr::from_ptr(end as *const libc::c_char).to_bytes().len() + 1;
        }
        (start, end)
    };
    let (mut start, mut end) = (usize::MAX, 0usize);
    // SAFETY: `environ` is libc's NULL-terminated array of NUL-terminated strings, unchanged
    // since start-up; the process is single-threaded (apply checked).
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let string = *entry as usize;
            start = start.min(string);
            end = end.max(string + CStr::from_ptr(*entry).to_bytes().len() + 1);
            entry = entry.add(1);
        }
    }
    StringAreas { arguments, environment: if start < end { (start, end) } else { (0, 0) } }
}

/// Overwrites the original environment strings with zeros, and rewrites the argument strings as
/// `argv[0]` followed by `visible` (NUL-separated, cut to the original length). Call after
/// [`replace`]: libc's `environ` then points only at new copies.
pub(crate) fn scrub_original(areas: &StringAreas, visible: &[OsString]) -> std::io::Result<()> {
    let (arg_start, arg_end) = areas.arguments;
    let (env_start, env_end) = areas.environment;
    // The kernel puts the environment right after the arguments, within one region of the stack.
    if env_end > env_start && (env_start < arg_end || env_end - arg_start > 1 << 24) {
        return Err(std::io::Error::other("the environment strings are not where the kernel puts them"));
    }
    let mut arguments: Vec<u8> = Vec::new();
    for argument in visible {
        arguments.extend_from_slice(argument.as_encoded_bytes());
        arguments.push(0);
    }
    // SAFETY: [arg_start, arg_end) and [env_start, env_end) are the argument and environment
    // strings the kernel copied to the top of the initial stack (checked above to be one region
    // after argv[0]), mapped writable for the life of the process. After `replace` no libc or
    // Rust structure points into the environment area (every variable was removed, every new one
    // is a heap copy); the arguments were parsed into owned strings before `apply`, and argv[0]
    // (up to its NUL) is kept as it is.
    unsafe {
        if env_end > env_start {
            std::ptr::write_bytes(env_start as *mut u8, 0, env_end - env_start);
        }
        if arg_end > arg_start {
            let first = CStr::from_ptr(arg_start as *const libc::c_char).to_bytes().len() + 1;
            let rest = (arg_end - arg_start).saturating_sub(first);
            let start = (arg_start + first) as *mut u8;
            std::ptr::write_bytes(start, 0, rest);
            let kept = arguments.len().min(rest.saturating_sub(1));
            std::ptr::copy_nonoverlapping(arguments.as_ptr(), start, kept);
        }
    }
    Ok(())
}
