//! The caller of a notified call, as the supervisor may inspect it: a pidfd of the calling
//! thread, its memory (read with `process_vm_readv`), its descriptors (duplicated with
//! `pidfd_getfd`) and its working directory. The supervisor may do this because the host's
//! landlock domain is nested in its own (`filesystem::restrict_run`) and both run as the same
//! user; what it reads is only ever used as a copy, checked before anything acts on it.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::arguments;
use super::paths;
use super::sys;

/// `ioctl(SECCOMP_IOCTL_NOTIF_ID_VALID)`: `_IOW('!', 2, __u64)`.
const SECCOMP_IOCTL_NOTIF_ID_VALID: libc::Ioctl = 0x4008_2102;
/// `pidfd_open` flag for a thread that does not lead its group (Linux 6.9).
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
/// The longest path the kernel takes, with its NUL.
const PATH_MAX: usize = 4096;
const PAGE: usize = 4096;

/// A notified call: the listener and notification it came by, the calling thread, and the
/// host's main process (whose threads a kernel before 6.9 gives no pidfd of their own).
#[derive(Clone, Copy)]
pub(crate) struct Notified {
    pub(crate) listener: RawFd,
    pub(crate) id: u64,
    pub(crate) tid: u32,
    pub(crate) host: libc::pid_t,
}

/// The thread blocked in a notified call.
pub(crate) struct Caller {
    listener: RawFd,
    id: u64,
    tid: libc::pid_t,
    pidfd: OwnedFd,
}

impl Caller {
    /// The caller of a notified call; fails when it is gone, or cannot be inspected (on a
    /// kernel before 6.9, a thread that does not lead its process, unless it is the host's).
    pub(crate) fn open(notified: Notified) -> io::Result<Caller> {
        let Notified { listener, id, tid, host } = notified;
        let tid = libc::pid_t::try_from(tid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        let pidfd = match pidfd_open(tid, 0) {
            // A thread that does not lead its process: EINVAL before Linux 6.9, ENOENT since,
            // where PIDFD_THREAD names it.
            Err(error) if matches!(error.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {
                match pidfd_open(tid, PIDFD_THREAD) {
                    // Before 6.9 (no PIDFD_THREAD): a thread of the host's main process shares
                    // its descriptor table, so the main process's pidfd serves.
                    Err(_) if is_thread_of(host, tid) => pidfd_open(host, 0)?,
                    other => other?,
                }
            }
            other => other?,
        };
        let caller = Caller { listener, id, tid, pidfd };
        caller.still_waiting()?;
        Ok(caller)
    }

    /// Fails unless the call is still pending: the thread is then still blocked in it, so its
    /// id names the same thread, and what was read of it is its own.
    pub(crate) fn still_waiting(&self) -> io::Result<()> {
        // SAFETY: the listener is a seccomp notification descriptor; the id lives for the call.
        sys::check(unsafe {
            sys::ioctl(self.listener, SECCOMP_IOCTL_NOTIF_ID_VALID, std::ptr::addr_of!(self.id) as usize)
        })
        .map(|_| ())
    }

    /// Reads `buffer.len()` bytes at `address` of the caller's memory (a copy: the caller may
    /// change the original at any time, and nothing but the copy is used).
    pub(crate) fn read_memory(&self, address: u64, buffer: &mut [u8]) -> io::Result<()> {
        let local = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
        let remote = libc::iovec { iov_base: address as usize as *mut libc::c_void, iov_len: buffer.len() };
        // SAFETY: one local iovec over our buffer and one remote iovec the kernel checks
        // against the caller's mappings; nothing of ours is written beyond the buffer.
        let read = unsafe { libc::process_vm_readv(self.tid, &local, 1, &remote, 1, 0) };
        if read < 0 {
            return Err(sys::last_error());
        }
        if read as usize != buffer.len() {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        Ok(())
    }

    /// The NUL-terminated string at `address` (a path), read page by page so that a string
    /// ending just before an unmapped page is read whole; ENAMETOOLONG past `PATH_MAX`. The
    /// caller's `/proc/self` is its own (`paths::own_proc`).
    pub(crate) fn read_path(&self, address: u64) -> io::Result<Vec<u8>> {
        self.read_string(address).map(|path| paths::own_proc(path, self.tid))
    }

    fn read_string(&self, address: u64) -> io::Result<Vec<u8>> {
        if address == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        let mut path = Vec::new();
        let mut at = address;
        while path.len() < PATH_MAX {
            let in_page = PAGE - (at as usize % PAGE);
            let mut chunk = vec![0u8; in_page.min(PATH_MAX - path.len())];
            self.read_memory(at, &mut chunk)?;
            if let Some(end) = chunk.iter().position(|&byte| byte == 0) {
                path.extend_from_slice(&chunk[..end]);
                return Ok(path);
            }
            path.extend_from_slice(&chunk);
            at += chunk.len() as u64;
        }
        Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
    }

    /// A duplicate of the caller's descriptor `fd` (close-on-exec).
    pub(crate) fn descriptor(&self, fd: u64) -> io::Result<OwnedFd> {
        let fd = arguments::c_int(fd);
        // SAFETY: pidfd_getfd takes a pidfd of ours, a descriptor number of the caller and no
        // flags, and returns a fresh descriptor or -1.
        sys::adopt(unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                libc::c_long::from(self.pidfd.as_raw_fd()),
                libc::c_long::from(fd),
                0 as libc::c_long,
            ) as libc::c_int
        })
    }

    /// Whether the caller's effective and filesystem uids and gids are the supervisor's own
    /// (`/proc/TID/status`). Run by root, a kernel before 6.18 gives an exec'd interpreter the
    /// run's own uid (no_new_privs resets the effective uid to the real one), and the supervisor
    /// must not then act with uid 0 for it.
    /// `identity`: the supervisor's effective uid and gid, read before its filter (which
    /// allows no geteuid).
    pub(crate) fn acts_as(&self, identity: (u32, u32)) -> bool {
        let Ok(path) = std::ffi::CString::new(format!("/proc/{}/status", self.tid)) else { return false };
        let mut buffer = [0u8; 4096];
        let Some(read) = sys::read_small(libc::AT_FDCWD, &path, &mut buffer) else { return false };
        let text = String::from_utf8_lossy(&buffer[..read]);
        // "Uid:\treal\teffective\tsaved\tfilesystem", the same for Gid.
        let ids = |key: &str| -> Option<(u32, u32)> {
            let line = text.lines().find(|line| line.starts_with(key))?;
            let fields: Vec<u32> =
                line[key.len()..].split_whitespace().filter_map(|field| field.parse().ok()).collect();
            Some((*fields.get(1)?, *fields.get(3)?))
        };
        let (uid, gid) = identity;
        ids("Uid:") == Some((uid, uid)) && ids("Gid:") == Some((gid, gid))
    }

    /// Where `path`, named with directory descriptor `directory` (`AT_FDCWD` included), starts
    /// from: `None` for an absolute path, else the caller's working directory or a duplicate of
    /// its descriptor.
    pub(crate) fn start_of(&self, directory: u64, path: &[u8]) -> io::Result<Option<OwnedFd>> {
        if path.first() == Some(&b'/') {
            Ok(None)
        } else if directory == arguments::AT_FDCWD {
            self.working_directory().map(Some)
        } else {
            self.descriptor(directory).map(Some)
        }
    }

    /// The caller's working directory, opened as a path (`/proc/TID/cwd`).
    pub(crate) fn working_directory(&self) -> io::Result<OwnedFd> {
        let path = CString::new(format!("/proc/{}/cwd", self.tid)).map_err(io::Error::other)?;
        // O_PATH opens no file for I/O.
        sys::open(&path, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
    }
}

/// Whether `tid` is a thread of process `pid`: `/proc/PID/task/TID` exists (an `O_PATH` lookup,
/// which needs no grant).
fn is_thread_of(pid: libc::pid_t, tid: libc::pid_t) -> bool {
    // O_PATH opens nothing for I/O (a number's decimal form holds no NUL).
    CString::new(format!("/proc/{pid}/task/{tid}"))
        .is_ok_and(|path| sys::open(&path, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC).is_ok())
}

/// `pidfd_open(pid, flags)`, every argument a full register (the supervisor's filter compares
/// all 64 bits).
fn pidfd_open(pid: libc::pid_t, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a fresh descriptor or -1.
    sys::adopt(unsafe {
        libc::syscall(libc::SYS_pidfd_open, libc::c_long::from(pid), libc::c_long::from(flags)) as libc::c_int
    })
}
