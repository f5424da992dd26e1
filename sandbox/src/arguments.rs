//! The program's arguments as the C library handed them to `main`.
//!
//! The hosts start from their own C `main` (see `h_host::main!`), not Rust's runtime: its start-up
//! costs every run 70–120 µs on a CPU whose system calls are dear, mostly for a stack-overflow
//! handler (on glibc it reads `/proc/self/maps` to find the main thread's stack). Without it,
//! std's `args_os` is empty on musl, so the host records `argv` here first; a program that starts
//! through Rust's runtime records nothing and gets std's.

use std::ffi::{CStr, OsString};
use std::os::unix::ffi::OsStringExt as _;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static COUNT: AtomicUsize = AtomicUsize::new(0);
static VECTOR: AtomicPtr<*const libc::c_char> = AtomicPtr::new(std::ptr::null_mut());

/// Keeps `argv` for [`all`], as Rust's runtime keeps it: the pointers, not copies (read before the
/// sandbox overwrites the original strings, which `apply` does).
///
/// # Safety
/// `argv` must point at `argc` NUL-terminated strings that live as long as the process, as the
/// C library passes them to `main`.
pub unsafe fn record(argc: libc::c_int, argv: *const *const libc::c_char) {
    COUNT.store(usize::try_from(argc).unwrap_or(0), Ordering::Relaxed);
    VECTOR.store(argv.cast_mut(), Ordering::Release);
}

/// The program's arguments, its name first.
pub fn all() -> Vec<OsString> {
    let vector = VECTOR.load(Ordering::Acquire);
    if vector.is_null() {
        return std::env::args_os().collect();
    }
    (0..COUNT.load(Ordering::Relaxed))
        .map(|index| {
            // SAFETY: `record` was given `argc` valid string pointers at `argv`, which live as long
            // as the process.
            let argument = unsafe { CStr::from_ptr(*vector.add(index)) };
            OsString::from_vec(argument.to_bytes().to_vec())
        })
        .collect()
}
