//! Start-up timestamps for `cargo xtask bench --breakdown`, compiled in only with the `timing`
//! feature (a normal build has empty functions). Each process records monotonic timestamps at
//! the boundaries of its stages and prints them on stderr when it reaches the script (the
//! host) or its end (the supervisor): `h-timing PID STAGE MICROSECONDS` since the first mark.

#[cfg(feature = "timing")]
mod enabled {
    use std::sync::Mutex;

    static MARKS: Mutex<Vec<(&'static str, u64)>> = Mutex::new(Vec::new());

    fn now() -> u64 {
        // SAFETY: an all-zero timespec is valid storage; clock_gettime fills it.
        let mut time: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: CLOCK_MONOTONIC and a writable timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut time) };
        time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64
    }

    pub fn mark(stage: &'static str) {
        if let Ok(mut marks) = MARKS.lock() {
            marks.push((stage, now()));
        }
    }

    pub fn report() {
        let Ok(marks) = MARKS.lock() else { return };
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let mut text = String::new();
        for &(stage, at) in marks.iter() {
            text.push_str(&format!("h-timing {pid} {stage} {}\n", at / 1000));
        }
        // SAFETY: writing a valid buffer to stderr.
        unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
    }
}

/// Records that `stage` ends now (no-op without the `timing` feature).
#[inline(always)]
pub fn mark(_stage: &'static str) {
    #[cfg(feature = "timing")]
    enabled::mark(_stage);
}

/// Prints the marks of this process on stderr (no-op without the `timing` feature).
#[inline(always)]
pub fn report() {
    #[cfg(feature = "timing")]
    enabled::report();
}
