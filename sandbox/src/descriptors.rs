//! Only stdin, stdout and stderr survive into the sandbox: an inherited descriptor could be a
//! socket, a directory or a terminal that landlock never sees.

pub(crate) fn close_inherited() -> std::io::Result<()> {
    // SAFETY: close_range only closes descriptors; none above 2 is owned by Rust code at this point
    // (hosts apply the sandbox before opening anything they keep).
    let result = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
