//! Emulated calls (`RuleAction::Emulate`): metadata calls landlock does not govern, made by the
//! supervisor on the script's behalf where they stay within what landlock already lets the
//! script write, and refused everywhere else.
//!
//! - `chmod`, `fchmodat`, `fchmodat2` and `utimensat` on a path: the supervisor reads the path
//!   from the caller's memory (a copy), opens it from the caller's working directory or
//!   descriptor as the call would (following a last symlink unless `AT_SYMLINK_NOFOLLOW`), and
//!   acts on the object it opened only if that object is a regular file or a directory whose
//!   path (as the kernel names the opened object, `/proc/self/fd/N`) lies beneath one of the
//!   host's write grants. A symlink into a grant that points outside it is judged by where it
//!   points; the script cannot move a file across a grant's edge (landlock's rename and link
//!   rules), so the check still holds after it.
//! - `fchmod` and `utimensat` on a descriptor (`futimens`): only on a regular file the caller
//!   holds open for writing: landlock admitted that write when the file was opened (every
//!   descriptor the script holds was opened under the sandbox; stdio is the supervisor's pipes).
//! - A mode with the set-user-ID or set-group-ID bit is refused: as root, a file the sandbox
//!   wrote could otherwise become a set-user-ID program for everyone after the run.
//!
//! The supervisor acts with the caller's own credentials: the same user, or run by root, uid 0
//! without capabilities but CAP_SYS_PTRACE, which it keeps to inspect the sandbox (whose real
//! uid is its own) only inside the run's landlock domain; on a kernel without landlock, a run
//! by root refuses every emulated call. The call the script made never runs: the answer carries the result
//! of the supervisor's call, or EPERM and a refusal line naming why.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use super::arguments::{int, AT_FDCWD};
use super::caller::{Caller, Notified};
use super::grants::Grants;
use super::paths;
use super::sys;
use crate::seccomp_program::SeccompProgram;

/// How an emulated call ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The supervisor made the call: its return value, or the errno it failed with.
    Made(Result<i64, i32>),
    /// The call is outside what may be emulated: refused, with the reason shown.
    Refused(&'static str),
    /// The caller is gone, or cannot be inspected: refused without a reason worth a line.
    Unreachable,
}

/// What the call changes.
enum Change {
    /// `chmod` to this mode.
    Mode(u32),
    /// `utimensat` with these times (`None`: now).
    Times(Option<[libc::timespec; 2]>),
    /// `inotify_add_watch` with this mask on the caller's instance (a duplicate of it).
    Watch { instance: OwnedFd, mask: u32 },
}

/// Which object: a descriptor, or a path from a directory descriptor (`AT_FDCWD` included).
enum Object {
    Descriptor(u64),
    Path { directory: u64, address: u64, follow: bool, empty_allowed: bool },
}

const AT_SYMLINK_NOFOLLOW: u64 = libc::AT_SYMLINK_NOFOLLOW as u64;
const AT_EMPTY_PATH: u64 = libc::AT_EMPTY_PATH as u64;
/// The mode bits an emulated chmod may set: permissions and the sticky bit.
const ALLOWED_MODE: u32 = 0o1777;
/// inotify_add_watch: do not follow a last symlink.
const IN_DONT_FOLLOW: u64 = 0x0200_0000;

/// Emulates notified call `data` of `tid` (notification `id` on `listener`), or says why not.
pub(crate) fn emulate(
    program: &SeccompProgram,
    grants: &Grants,
    enabled: bool,
    notified: Notified,
    data: &libc::seccomp_data,
) -> Answer {
    if !enabled {
        return Answer::Refused("run by root without landlock, the supervisor cannot inspect the sandbox");
    }
    let args = data.args;
    let (object, change_address, mode) = match program.syscall_name(data.nr as u32) {
        Some("chmod") => (
            Object::Path { directory: AT_FDCWD, address: args[0], follow: true, empty_allowed: false },
            None,
            Some(args[1]),
        ),
        Some("fchmodat") => (
            Object::Path { directory: int(args[0]), address: args[1], follow: true, empty_allowed: false },
            None,
            Some(args[2]),
        ),
        Some("fchmodat2") => {
            let flags = int(args[3]);
            if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
                return Answer::Made(Err(libc::EINVAL));
            }
            let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
            let empty_allowed = flags & AT_EMPTY_PATH != 0;
            (Object::Path { directory: int(args[0]), address: args[1], follow, empty_allowed }, None, Some(args[2]))
        }
        Some("fchmod") => (Object::Descriptor(int(args[0])), None, Some(args[1])),
        Some("utimensat") => {
            let flags = int(args[3]);
            if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
                return Answer::Made(Err(libc::EINVAL));
            }
            let object = if args[1] == 0 {
                Object::Descriptor(int(args[0]))
            } else {
                let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
                Object::Path {
                    directory: int(args[0]),
                    address: args[1],
                    follow,
                    empty_allowed: flags & AT_EMPTY_PATH != 0,
                }
            };
            (object, Some(args[2]), None)
        }
        Some("inotify_add_watch") => return watch(grants, notified, args),
        _ => return Answer::Refused("no emulation for this call"),
    };
    let Ok(caller) = Caller::open(notified) else { return Answer::Unreachable };
    if grants.identity.is_some_and(|identity| !caller.acts_as(identity)) {
        return Answer::Refused(
            "the caller's uid is not the supervisor's (run by root, the interpreter took the run's own uid at exec)",
        );
    }
    let change = match (mode, change_address) {
        (Some(mode), _) => {
            let Ok(mode) = u32::try_from(mode & 0xffff_ffff) else { return Answer::Made(Err(libc::EINVAL)) };
            if mode & !ALLOWED_MODE & 0o7777 != 0 {
                return Answer::Refused("set-user-ID and set-group-ID bits are never set for the script");
            }
            Change::Mode(mode & 0o7777)
        }
        (None, Some(0)) => Change::Times(None),
        (None, Some(address)) => {
            let mut bytes = [0u8; 2 * std::mem::size_of::<libc::timespec>()];
            if caller.read_memory(address, &mut bytes).is_err() {
                return Answer::Made(Err(libc::EFAULT));
            }
            // SAFETY: two timespecs are plain integers; any bit pattern is a value (the kernel
            // validates the nanoseconds itself).
            Change::Times(Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<[libc::timespec; 2]>()) }))
        }
        (None, None) => return Answer::Refused("no emulation for this call"),
    };
    finish(&caller, grants, object, change)
}

/// `inotify_add_watch(fd, path, mask)`: the watch goes on the caller's own instance.
fn watch(grants: &Grants, notified: Notified, args: [u64; 6]) -> Answer {
    let Ok(caller) = Caller::open(notified) else { return Answer::Unreachable };
    if grants.identity.is_some_and(|identity| !caller.acts_as(identity)) {
        return Answer::Refused(
            "the caller's uid is not the supervisor's (run by root, the interpreter took the run's own uid at exec)",
        );
    }
    let instance = match caller.descriptor(int(args[0])) {
        Ok(instance) => instance,
        Err(error) => return Answer::Made(Err(error.raw_os_error().unwrap_or(libc::EBADF))),
    };
    let mask = args[2] & 0xffff_ffff;
    let follow = mask & IN_DONT_FOLLOW == 0;
    let Ok(mask) = u32::try_from(mask & !IN_DONT_FOLLOW) else { return Answer::Made(Err(libc::EINVAL)) };
    let object = Object::Path { directory: AT_FDCWD, address: args[1], follow, empty_allowed: false };
    finish(&caller, grants, object, Change::Watch { instance, mask })
}

/// Opens the object and checks it, then makes the call on it.
fn finish(caller: &Caller, grants: &Grants, object: Object, change: Change) -> Answer {
    let watching = matches!(change, Change::Watch { .. });
    let opened = match object {
        Object::Descriptor(fd) => open_descriptor(caller, fd),
        Object::Path { directory, address, follow, empty_allowed } => {
            let times = matches!(change, Change::Times(_));
            open_path(caller, grants, (watching, times), directory, address, follow, empty_allowed)
        }
    };
    let target = match opened {
        Ok(target) => target,
        Err(Refusal::Errno(errno)) => return Answer::Made(Err(errno)),
        Err(Refusal::Outside(reason)) => return Answer::Refused(reason),
    };
    // Everything read of the caller was its own: the call is still pending.
    if caller.still_waiting().is_err() {
        return Answer::Unreachable;
    }
    Answer::Made(perform(&target, &change))
}

/// Why an object is not acted on.
enum Refusal {
    /// What the call itself would have failed with.
    Errno(i32),
    /// Outside what may be emulated.
    Outside(&'static str),
}

fn errno_of(error: io::Error) -> Refusal {
    Refusal::Errno(error.raw_os_error().unwrap_or(libc::EIO))
}

/// The object to act on, and how: a descriptor of its own (`fchmod`, `futimens`), or an
/// `O_PATH` descriptor reached through `/proc/self/fd`.
enum Target {
    Open(OwnedFd),
    Path(OwnedFd),
    /// A symlink itself, opened `O_PATH | O_NOFOLLOW` (its times only).
    Link(OwnedFd),
}

/// `fstat` of a descriptor of ours.
fn status(fd: &OwnedFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid buffer for fstat to fill.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one stat we own.
    sys::check(unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) })?;
    Ok(stat)
}

/// A descriptor of the caller: a regular file it holds open for writing.
fn open_descriptor(caller: &Caller, fd: u64) -> Result<Target, Refusal> {
    let duplicate = caller.descriptor(fd).map_err(errno_of)?;
    let stat = status(&duplicate).map_err(errno_of)?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Refusal::Outside("only a regular file the script holds open for writing"));
    }
    // SAFETY: F_GETFL reads the flags of a descriptor we own.
    let flags = sys::check(unsafe { libc::fcntl(duplicate.as_raw_fd(), libc::F_GETFL) }).map_err(errno_of)?;
    if flags & libc::O_ACCMODE == libc::O_RDONLY || flags & libc::O_PATH != 0 {
        return Err(Refusal::Outside("only a regular file the script holds open for writing"));
    }
    Ok(Target::Open(duplicate))
}

/// A path of the caller, opened as the call would, admitted only beneath a write grant.
fn open_path(
    caller: &Caller,
    grants: &Grants,
    (watching, times): (bool, bool),
    directory: u64,
    address: u64,
    follow: bool,
    empty_allowed: bool,
) -> Result<Target, Refusal> {
    let path = caller.read_path(address).map_err(errno_of)?;
    let base = caller.start_of(directory, &path).map_err(errno_of)?;
    let object = if path.is_empty() {
        match (empty_allowed, base) {
            (true, Some(base)) => base,
            _ => return Err(Refusal::Errno(libc::ENOENT)),
        }
    } else {
        paths::open_object(base.as_ref(), &path, follow).map_err(errno_of)?
    };
    let stat = status(&object).map_err(errno_of)?;
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFDIR => {}
        // A symlink itself (AT_SYMLINK_NOFOLLOW): its times can be set, not its mode.
        libc::S_IFLNK if times => {}
        libc::S_IFLNK if !watching => return Err(Refusal::Errno(libc::EOPNOTSUPP)),
        _ => return Err(Refusal::Outside("only regular files and directories beneath a write grant")),
    }
    let named = paths::where_is(&object).map_err(errno_of)?;
    if watching && !grants.admit_watch(&named) {
        return Err(Refusal::Outside("outside the grants"));
    }
    if !watching && !grants.admit_change(&named) {
        return Err(Refusal::Outside("outside the write grants"));
    }
    if stat.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Ok(Target::Link(object));
    }
    Ok(Target::Path(object))
}

/// Makes the call on `target`: its return value or errno.
fn perform(target: &Target, change: &Change) -> Result<i64, i32> {
    let times = |times: &Option<[libc::timespec; 2]>| times.as_ref().map_or(std::ptr::null(), |pair| pair.as_ptr());
    let result = match target {
        // SAFETY: a descriptor we own; the times are null or two timespecs that live for the call.
        Target::Open(fd) => unsafe {
            match change {
                Change::Mode(mode) => libc::fchmod(fd.as_raw_fd(), *mode),
                // futimens: glibc's utimensat refuses a null path (EINVAL) where the kernel
                // takes one; futimens is the same call with the descriptor itself.
                Change::Times(pair) => libc::futimens(fd.as_raw_fd(), times(pair)),
                // A watch always names a path (`watch`): never a descriptor of its own.
                Change::Watch { .. } => return Err(libc::EBADF),
            }
        },
        Target::Link(fd) => match change {
            // SAFETY: an O_PATH descriptor we own, an empty NUL-terminated path and two
            // timespecs that live for the call (AT_EMPTY_PATH: the symlink the descriptor is,
            // Linux 5.8).
            Change::Times(pair) => unsafe {
                libc::utimensat(fd.as_raw_fd(), c"".as_ptr(), times(pair), libc::AT_EMPTY_PATH)
            },
            Change::Mode(_) | Change::Watch { .. } => return Err(libc::EOPNOTSUPP),
        },
        Target::Path(fd) => {
            let link = format!("/proc/self/fd/{}\0", fd.as_raw_fd());
            // SAFETY: a NUL-terminated path we own (the object we opened and checked); the
            // times are null or two timespecs that live for the call.
            unsafe {
                match change {
                    Change::Mode(mode) => {
                        // Full registers (c_long): the supervisor's filter compares all 64 bits.
                        libc::syscall(
                            libc::SYS_fchmodat,
                            libc::c_long::from(libc::AT_FDCWD),
                            link.as_ptr(),
                            libc::c_long::from(*mode),
                        ) as libc::c_int
                    }
                    Change::Times(pair) => libc::utimensat(libc::AT_FDCWD, link.as_ptr().cast(), times(pair), 0),
                    // Through the link to the object checked, following it: the caller's own
                    // IN_DONT_FOLLOW was applied when the path was opened.
                    Change::Watch { instance, mask } => {
                        libc::inotify_add_watch(instance.as_raw_fd(), link.as_ptr().cast(), *mask)
                    }
                }
            }
        }
    };
    if result < 0 {
        Err(sys::last_error().raw_os_error().unwrap_or(libc::EIO))
    } else {
        Ok(i64::from(result))
    }
}
