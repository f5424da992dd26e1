//! Private stdio: the sandbox never holds one of the caller's open file descriptions.
//!
//! Before the fork, [`Plan::create`] looks at the caller's descriptors 0, 1 and 2 and makes a
//! private stand-in for each: a pipe that the supervisor relays (splice where it can), a fresh
//! `/dev/null` for `/dev/null`, nothing for a closed descriptor, and one private pseudo-terminal
//! for every descriptor that is a terminal (as `sudo` does with `use_pty`). Reopening
//! `/dev/fd/0` for writing, `/dev/fd/1` for reading, `lseek`, `ftruncate`, `fcntl(F_SETFL)` or
//! terminal ioctls then act on the sandbox's own stand-ins; only the bytes it writes to stdout
//! and stderr reach the caller. When descriptors 1 and 2 are the same file (`2>&1`), they share
//! one pipe, so their order is kept.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use super::relay::{self, Direction, End, Pump};
use super::sys;
use super::terminal::{self, RawMode};

/// What the caller's descriptor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Closed,
    Null,
    Terminal,
    /// `nonblocking`: a pipe or a regular file, which no relay call can block on.
    Stream {
        device: u64,
        inode: u64,
        regular: bool,
        nonblocking: bool,
    },
}

fn classify(fd: RawFd) -> Caller {
    // SAFETY: an all-zero stat is valid storage; fstat fills it or fails (EBADF when closed).
    let mut status: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `status` is writable.
    if unsafe { libc::fstat(fd, &mut status) } != 0 {
        return Caller::Closed;
    }
    let kind = status.st_mode & libc::S_IFMT;
    if kind == libc::S_IFCHR && status.st_rdev == libc::makedev(1, 3) {
        return Caller::Null;
    }
    if terminal::modes(fd).is_some() {
        return Caller::Terminal;
    }
    let regular = kind == libc::S_IFREG;
    Caller::Stream {
        device: status.st_dev,
        inode: status.st_ino,
        regular,
        nonblocking: regular || kind == libc::S_IFIFO,
    }
}

/// The host's side: what becomes its descriptors 0, 1 and 2.
pub(crate) struct HostSide {
    fds: Vec<OwnedFd>,
    /// For descriptor n of the host: an index into `fds`, or `None` to leave it closed.
    map: [Option<usize>; 3],
    /// The private terminal's slave, to become the host's controlling terminal.
    terminal: Option<usize>,
}

/// The supervisor's side: the pumps and the private terminal.
pub(crate) struct SupervisorSide {
    pub(crate) pumps: Vec<Pump>,
    pub(crate) terminal: Option<PrivateTerminal>,
    /// A read end of the stdin pipe when stdin is a regular file: what the script never read
    /// goes back to the caller at the end (the file position is moved back over it).
    stdin_probe: Option<OwnedFd>,
    /// Whether the caller's stderr is the terminal the supervisor switches to raw mode.
    stderr_is_terminal: bool,
    /// The pump that reads keys from the caller's terminal, if any.
    keys_pump: Option<usize>,
}

/// The private pseudo-terminal, from the supervisor's side.
pub(crate) struct PrivateTerminal {
    master: OwnedFd,
    /// A slave descriptor the supervisor keeps: it reads how much input the script has not
    /// consumed yet (the gate of the key pump), and keeps the terminal alive between the
    /// script's own opens. Closed before the last output is drained.
    slave: Option<OwnedFd>,
    /// The caller's terminal descriptor that output and window sizes come from.
    caller: RawFd,
    /// The caller's stdin, when it is the terminal and the supervisor may read it.
    keys: Option<RawFd>,
    raw_mode: Option<RawMode>,
}

pub(crate) struct Plan {
    pub(crate) host: HostSide,
    pub(crate) supervisor: SupervisorSide,
    /// The private terminal's path (`/dev/pts/N`), granted to the host by landlock.
    pub(crate) terminal_path: Option<PathBuf>,
}

/// A pipe page: the most stdin is read ahead, and the most keys the supervisor takes at once.
pub(super) const PAGE: usize = 4096;

fn open_null() -> io::Result<OwnedFd> {
    sys::open(c"/dev/null", libc::O_RDWR | libc::O_CLOEXEC)
}

struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    path: PathBuf,
}

fn open_pty(caller: RawFd) -> io::Result<Pty> {
    let master = sys::open(c"/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC)?;
    let unlock: libc::c_int = 0;
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCSPTLCK reads an int, TIOCGPTN writes an unsigned int, both ours.
    unsafe {
        sys::check(sys::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, std::ptr::addr_of!(unlock) as usize))?;
        sys::check(sys::ioctl(master.as_raw_fd(), libc::TIOCGPTN, std::ptr::addr_of_mut!(number) as usize))?;
    }
    // TIOCGPTPEER opens the slave through the master itself: no path lookup to race.
    // SAFETY: the flags are passed as the open flags of the new descriptor.
    let slave = sys::adopt(unsafe {
        sys::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, (libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as usize)
    })?;
    if let Some(modes) = terminal::modes(caller) {
        terminal::set_modes(slave.as_raw_fd(), &modes)?;
    }
    terminal::copy_window_size(caller, master.as_raw_fd());
    sys::set_nonblocking(&master)?;
    Ok(Pty { master, slave, path: PathBuf::from(format!("/dev/pts/{number}")) })
}

impl Plan {
    /// Creates every stand-in. Runs before the fork, when only 0, 1 and 2 are open.
    pub(crate) fn create() -> io::Result<Plan> {
        let kinds = [classify(0), classify(1), classify(2)];
        // Keep 0..2 occupied so that every descriptor made below is 3 or above.
        for (fd, kind) in kinds.iter().enumerate() {
            if *kind == Caller::Closed {
                let placeholder = open_null()?;
                if placeholder.as_raw_fd() != fd as RawFd {
                    return Err(io::Error::other("descriptors 0-2 are not the lowest free ones"));
                }
                std::mem::forget(placeholder);
            }
        }
        let mut host = HostSide { fds: Vec::new(), map: [None; 3], terminal: None };
        let mut pumps = Vec::new();
        let mut stdin_probe = None;
        let terminal_caller = [1, 2, 0].into_iter().find(|&fd| kinds[fd] == Caller::Terminal);
        let pty = match terminal_caller {
            Some(fd) => Some(open_pty(fd as RawFd)?),
            None => None,
        };
        let mut terminal = None;
        let mut terminal_path = None;
        if let (Some(pty), Some(caller)) = (pty, terminal_caller) {
            host.fds.push(pty.slave.try_clone()?);
            host.terminal = Some(host.fds.len() - 1);
            terminal_path = Some(pty.path);
            let keys = (kinds[0] == Caller::Terminal && terminal::in_foreground(0)).then_some(0);
            terminal = Some(PrivateTerminal {
                master: pty.master,
                slave: Some(pty.slave),
                caller: caller as RawFd,
                keys,
                raw_mode: None,
            });
        }

        // Whether the kernel's pipes take RWF_NOWAIT, asked once, where a caller's pipe needs it.
        let mut nowait = None;
        for fd in 0..3usize {
            match kinds[fd] {
                Caller::Closed => {}
                Caller::Terminal => host.map[fd] = host.terminal,
                Caller::Null => {
                    host.fds.push(open_null()?);
                    host.map[fd] = Some(host.fds.len() - 1);
                }
                Caller::Stream { device, inode, regular, nonblocking } => {
                    if fd == 2 {
                        if let Caller::Stream { device: out_device, inode: out_inode, .. } = kinds[1] {
                            if (device, inode) == (out_device, out_inode) {
                                host.map[2] = host.map[1];
                                continue;
                            }
                        }
                    }
                    let (read_end, write_end) = sys::pipe()?;
                    if fd == 0 {
                        // One page: the sandbox never takes more than that of input it may not read.
                        // SAFETY: F_SETPIPE_SZ takes an integer size.
                        unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_SETPIPE_SZ, PAGE as libc::c_int) };
                        if regular {
                            stdin_probe = Some(read_end.try_clone()?);
                        }
                        sys::set_nonblocking(&write_end)?;
                        host.fds.push(read_end);
                        pumps.push(Pump::new(
                            End::Caller(0),
                            End::Own(write_end),
                            Direction::Inbound,
                            true,
                            PAGE,
                            nonblocking,
                        ));
                    } else {
                        sys::set_nonblocking(&read_end)?;
                        host.fds.push(write_end);
                        let pump = Pump::new(
                            End::Own(read_end),
                            End::Caller(fd as RawFd),
                            Direction::Outbound,
                            true,
                            usize::MAX,
                            nonblocking,
                        );
                        let is_pipe = nonblocking && !regular;
                        pumps.push(if is_pipe && *nowait.get_or_insert_with(relay::pipes_take_nowait) {
                            pump.merging()
                        } else {
                            pump
                        });
                    }
                    host.map[fd] = Some(host.fds.len() - 1);
                }
            }
        }
        let mut keys_pump = None;
        if let Some(terminal) = &terminal {
            let master = terminal.master.as_raw_fd();
            pumps.push(Pump::new(
                End::Shared(master),
                End::Caller(terminal.caller),
                Direction::Outbound,
                false,
                usize::MAX,
                false,
            ));
            if let (Some(keys), Some(slave)) = (terminal.keys, terminal.slave.as_ref()) {
                keys_pump = Some(pumps.len());
                pumps.push(
                    Pump::new(End::Caller(keys), End::Shared(master), Direction::Inbound, false, PAGE, false)
                        .gated_by(slave.as_raw_fd()),
                );
            }
        }
        let stderr_is_terminal = kinds[2] == Caller::Terminal;
        Ok(Plan {
            host,
            supervisor: SupervisorSide { pumps, terminal, stdin_probe, stderr_is_terminal, keys_pump },
            terminal_path,
        })
    }
}

impl HostSide {
    /// In the host, after the fork: a new session (so that the whole sandbox is one process
    /// group the supervisor can end, and the caller's terminal is not its controlling terminal),
    /// the private terminal as controlling terminal, and the stand-ins on 0, 1 and 2.
    pub(crate) fn install(self) -> io::Result<()> {
        // SAFETY: setsid takes no arguments; the host is not a process group leader (it was
        // just forked).
        sys::check(unsafe { libc::setsid() })?;
        if let Some(index) = self.terminal {
            // SAFETY: TIOCSCTTY on the slave of our own new terminal, from a session leader.
            sys::check(unsafe { sys::ioctl(self.fds[index].as_raw_fd(), libc::TIOCSCTTY, 0) })?;
        }
        for (fd, slot) in self.map.iter().enumerate() {
            match slot {
                // SAFETY: dup2 onto 0..2 of a descriptor we own; dup2 clears close-on-exec.
                Some(index) => sys::check(unsafe { libc::dup2(self.fds[*index].as_raw_fd(), fd as RawFd) })?,
                // SAFETY: closing 0..2, left closed as the caller had them.
                None => unsafe { libc::close(fd as RawFd) },
            };
        }
        Ok(())
    }
}

impl SupervisorSide {
    /// In the supervisor, after the fork: the caller's terminal goes into raw mode when the
    /// supervisor reads keys from it.
    pub(crate) fn start(&mut self) {
        let Some(terminal) = &mut self.terminal else { return };
        let Some(keys) = terminal.keys else { return };
        let pump = self.keys_pump.and_then(|index| self.pumps.get_mut(index));
        match (RawMode::enter(keys), pump) {
            (Some((raw_mode, typed_ahead)), pump) => {
                terminal.raw_mode = Some(raw_mode);
                if let Some(pump) = pump {
                    pump.queue(&typed_ahead);
                }
            }
            // Not switchable: the keys stay with the caller's terminal.
            (None, Some(pump)) => pump.stop(),
            (None, None) => {}
        }
    }

    /// Whether the supervisor's own lines need `\r\n` (the caller's terminal is raw).
    pub(crate) fn stderr_is_raw(&self) -> bool {
        self.stderr_is_terminal && self.terminal.as_ref().is_some_and(|terminal| terminal.raw_mode.is_some())
    }

    /// SIGWINCH: the caller's window size goes to the private terminal.
    pub(crate) fn copy_window_size(&self) {
        if let Some(terminal) = &self.terminal {
            terminal::copy_window_size(terminal.caller, terminal.master.as_raw_fd());
        }
    }

    /// Moves what is ready now, without waiting (before the supervisor prints a line of its own,
    /// so that the line comes after the output the script wrote before it).
    pub(crate) fn flush_ready(&mut self) {
        for pump in self.pumps.iter_mut().filter(|pump| pump.direction() == Direction::Outbound) {
            let _ = pump.run();
        }
    }

    /// The end of the run, once every process of the sandbox is gone: the last output reaches
    /// the caller, the caller's terminal gets its modes back, and stdin input that the script
    /// never read is returned to the caller where the kernel allows (a regular file).
    pub(crate) fn finish(&mut self) {
        for pump in self.pumps.iter_mut().filter(|pump| pump.direction() == Direction::Inbound) {
            pump.stop();
        }
        if let Some(terminal) = &mut self.terminal {
            terminal.slave = None;
        }
        for pump in self.pumps.iter_mut() {
            pump.drain();
        }
        if let Some(terminal) = &self.terminal {
            if let Some(raw_mode) = &terminal.raw_mode {
                raw_mode.restore();
            }
        }
        if let Some(probe) = &self.stdin_probe {
            let mut unread: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int; lseek takes integers (a regular file, by the plan).
            unsafe {
                if sys::ioctl(probe.as_raw_fd(), libc::FIONREAD, std::ptr::addr_of_mut!(unread) as usize) == 0
                    && unread > 0
                {
                    libc::lseek(0, -libc::off_t::from(unread), libc::SEEK_CUR);
                }
            }
        }
    }

    /// Restores the caller's terminal (on every way out, errors included).
    pub(crate) fn restore_terminal(&self) {
        if let Some(raw_mode) = self.terminal.as_ref().and_then(|terminal| terminal.raw_mode.as_ref()) {
            raw_mode.restore();
        }
    }
}
