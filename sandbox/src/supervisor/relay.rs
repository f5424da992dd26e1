//! Pumps: each moves bytes one way between a descriptor of the caller and one of the sandbox.
//! `splice` where one side is a pipe and the other allows it (no copy through the supervisor),
//! `read`/`write` otherwise (terminals); into a caller's pipe, `read` and a write that cannot
//! block, where the kernel has one (`Pump::merging`: a splice would fragment the caller's pipe).
//! The supervisor's own ends are non-blocking; the caller's descriptors keep their flags (they
//! are shared with the caller), so a pump only touches one after `poll` says it is ready, or
//! with a write that cannot block.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::sys;

/// One end of a pump.
pub(crate) enum End {
    /// A descriptor of the caller's (0, 1 or 2 of the supervisor): never closed or changed.
    Caller(RawFd),
    /// The supervisor's own end of a private pipe: closed when the pump stops, which is how the
    /// sandbox sees end of input, or a broken pipe when the caller stopped reading.
    Own(OwnedFd),
    /// A descriptor another part of the supervisor owns (the private terminal's master).
    Shared(RawFd),
}

impl End {
    fn raw(&self) -> RawFd {
        match self {
            End::Caller(fd) | End::Shared(fd) => *fd,
            End::Own(fd) => fd.as_raw_fd(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Direction {
    /// From the caller into the sandbox (stdin, keys).
    Inbound,
    /// From the sandbox to the caller (stdout, stderr, terminal output).
    Outbound,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    Splice,
    Copy,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Waiting {
    Source,
    Sink,
}

/// Writes `bytes` to `fd`.
fn write(fd: RawFd, bytes: &[u8]) -> isize {
    // SAFETY: the bytes are valid for their length.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) }
}

/// Writes `bytes` to the pipe `fd` at its current position, failing with EAGAIN rather than
/// waiting when the pipe is full, whether or not the descriptor is nonblocking.
fn write_nowait(fd: RawFd, bytes: &[u8]) -> isize {
    let piece = libc::iovec { iov_base: bytes.as_ptr().cast_mut().cast(), iov_len: bytes.len() };
    // The offset as its two halves, low -1 (the current position) and high 0, as the
    // supervisor's filter names them: a 64-bit kernel reads only the low half, and the C
    // libraries fill the high one differently (glibc 0, musl all ones).
    let (position_low, position_high): (libc::c_long, libc::c_long) = (-1, 0);
    // SAFETY: one iovec over bytes valid for its length, which the kernel only reads.
    let written = unsafe {
        let (fd, flags) = (libc::c_long::from(fd), libc::c_long::from(libc::RWF_NOWAIT));
        libc::syscall(libc::SYS_pwritev2, fd, &piece, 1 as libc::c_long, position_low, position_high, flags)
    };
    written as isize
}

/// Whether this kernel's pipes take `RWF_NOWAIT` on a write (older kernels answer EOPNOTSUPP,
/// and the relay then splices every piece, as before): asked once, of a pipe of our own, before
/// the supervisor's filter.
pub(crate) fn pipes_take_nowait() -> bool {
    let Ok((read_end, write_end)) = sys::pipe() else { return false };
    let written = write_nowait(write_end.as_raw_fd(), b"?");
    drop((read_end, write_end));
    written == 1
}

/// What one attempt to move bytes achieved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Step {
    Moved,
    /// Nothing to move now (source empty or sink full).
    Blocked,
    /// The pump has stopped for good.
    Stopped,
}

const CHUNK: usize = 64 * 1024;

pub(crate) struct Pump {
    source: Option<End>,
    sink: Option<End>,
    direction: Direction,
    method: Method,
    waiting: Waiting,
    /// Bytes read but not yet written (copy method only).
    pending: Vec<u8>,
    /// The most one transfer moves (inbound: one pipe page, the read-ahead bound).
    chunk: usize,
    /// Inbound on a terminal: read the caller's keys only while the script has consumed the
    /// previous ones (FIONREAD of this descriptor, the private terminal's slave side, is 0).
    gate: Option<RawFd>,
    /// Why an outbound pump stopped early, when the caller should hear of it.
    problem: Option<String>,
    /// Transfers per wake-up: several only where no call can block (the caller's end is a pipe
    /// or a regular file); one where it could (a terminal, a socket), after `poll` said ready.
    rounds: usize,
    /// Outbound into a caller's pipe on a kernel whose pipes take `RWF_NOWAIT`: the relay copies
    /// (read, then a write that cannot block, although the caller's own description of the pipe
    /// may block and is not the supervisor's to change) instead of splicing. A splice moves the
    /// private pipe's buffers as they are, so a piece of a few bytes took a whole slot of the
    /// caller's pipe (16 by default): a script that wrote and flushed small pieces as fast as
    /// the relay moved them filled the caller's pipe with a few hundred bytes, and its reader then
    /// woke for every few bytes (one run in 20 to 40 of 200k 2-byte writes took 0.2 to 0.8 s
    /// instead of 0.1; docs/overhead.md). A write joins the bytes to the pipe's last page.
    merging: bool,
}

impl Pump {
    /// `nonblocking_caller`: the caller's end cannot block a splice or read/write (a pipe with
    /// SPLICE_F_NONBLOCK, a regular file).
    pub(crate) fn new(
        source: End,
        sink: End,
        direction: Direction,
        splice: bool,
        chunk: usize,
        nonblocking_caller: bool,
    ) -> Pump {
        Pump {
            source: Some(source),
            sink: Some(sink),
            direction,
            method: if splice { Method::Splice } else { Method::Copy },
            waiting: Waiting::Source,
            pending: Vec::new(),
            chunk: chunk.min(CHUNK),
            gate: None,
            problem: None,
            rounds: if nonblocking_caller && splice { 16 } else { 1 },
            merging: false,
        }
    }

    /// Copies into the caller's pipe rather than splicing (the sink must be a pipe, and the
    /// kernel's pipes must take `RWF_NOWAIT`: [`pipes_take_nowait`]).
    pub(crate) fn merging(mut self) -> Pump {
        self.method = Method::Copy;
        self.merging = true;
        self
    }

    pub(crate) fn gated_by(mut self, gate: RawFd) -> Pump {
        self.gate = Some(gate);
        self
    }

    /// Bytes to write before anything read from the source (the keys typed ahead on the
    /// caller's terminal before it went raw).
    pub(crate) fn queue(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    pub(crate) fn direction(&self) -> Direction {
        self.direction
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.source.is_none()
    }

    /// Whether the gate is closed: the script has not yet read what it was given.
    pub(crate) fn is_gated(&self) -> bool {
        let Some(gate) = self.gate else { return false };
        if !self.pending.is_empty() || self.is_stopped() {
            return false;
        }
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int into `queued`.
        let result = unsafe { sys::ioctl(gate, libc::FIONREAD, std::ptr::addr_of_mut!(queued) as usize) };
        result == 0 && queued > 0
    }

    /// The descriptor and events to poll for, if any.
    pub(crate) fn interest(&self) -> Option<(RawFd, libc::c_short)> {
        if self.is_stopped() || self.is_gated() {
            return None;
        }
        if self.waiting == Waiting::Sink || !self.pending.is_empty() {
            return self.sink.as_ref().map(|sink| (sink.raw(), libc::POLLOUT));
        }
        self.source.as_ref().map(|source| (source.raw(), libc::POLLIN))
    }

    /// Stops the pump, closing the supervisor's own ends.
    pub(crate) fn stop(&mut self) {
        self.source = None;
        self.sink = None;
        self.pending.clear();
    }

    /// After `poll` said the pump's descriptor is ready: moves bytes until it blocks or stops.
    pub(crate) fn run(&mut self) -> Step {
        let mut moved = false;
        for _ in 0..self.rounds {
            match self.transfer() {
                Step::Moved => moved = true,
                Step::Blocked if moved => return Step::Moved,
                other => return other,
            }
        }
        Step::Moved
    }

    fn transfer(&mut self) -> Step {
        let (Some(source), Some(sink)) = (self.source.as_ref(), self.sink.as_ref()) else {
            return Step::Stopped;
        };
        let (source, sink) = (source.raw(), sink.raw());
        if self.method == Method::Splice && self.pending.is_empty() {
            // SAFETY: splice between two open descriptors; null offsets use the file positions.
            let moved = unsafe {
                libc::splice(
                    source,
                    std::ptr::null_mut(),
                    sink,
                    std::ptr::null_mut(),
                    self.chunk,
                    libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
                )
            };
            return match moved {
                0 => self.finish(),
                n if n > 0 => {
                    self.waiting = Waiting::Source;
                    Step::Moved
                }
                _ => match sys::last_error().raw_os_error() {
                    Some(libc::EINTR) => Step::Moved,
                    // Either side may be the one that is not ready: poll the other side next.
                    Some(libc::EAGAIN) => {
                        self.waiting = if self.waiting == Waiting::Source { Waiting::Sink } else { Waiting::Source };
                        Step::Blocked
                    }
                    // One side cannot splice (a terminal, a directory, ...): copy instead, one
                    // transfer per wake-up.
                    Some(libc::EINVAL) => {
                        self.method = Method::Copy;
                        self.rounds = 1;
                        Step::Moved
                    }
                    errno => self.fail(errno),
                },
            };
        }
        if self.pending.is_empty() {
            // The buffer is kept from one transfer to the next (its capacity, not its bytes).
            self.pending.resize(self.chunk, 0);
            // SAFETY: the buffer is writable for its length.
            let read = unsafe { libc::read(source, self.pending.as_mut_ptr().cast(), self.pending.len()) };
            self.pending.truncate(usize::try_from(read).unwrap_or(0));
            if read == 0 {
                return self.finish();
            }
            if read < 0 {
                return match sys::last_error().raw_os_error() {
                    Some(libc::EINTR) => Step::Moved,
                    Some(libc::EAGAIN) => {
                        self.waiting = Waiting::Source;
                        Step::Blocked
                    }
                    // EIO: the private terminal has no slave left; anything else ends the pump too.
                    _ => self.finish(),
                };
            }
        }
        let written = if self.merging { write_nowait(sink, &self.pending) } else { write(sink, &self.pending) };
        if written < 0 {
            return match sys::last_error().raw_os_error() {
                Some(libc::EINTR) => Step::Moved,
                Some(libc::EAGAIN) => {
                    self.waiting = Waiting::Sink;
                    Step::Blocked
                }
                errno => self.fail(errno),
            };
        }
        self.pending.drain(..written as usize);
        self.waiting = Waiting::Source;
        Step::Moved
    }

    /// The source ended or a side failed: close what is ours. Inbound, the sandbox then reads
    /// end of input; outbound, its writes fail with EPIPE (SIGPIPE), as when a reader goes away.
    fn finish(&mut self) -> Step {
        self.stop();
        Step::Stopped
    }

    /// As [`Pump::finish`], remembering a failure of the caller's file worth a line of its own
    /// (a reader going away is not one: the sandbox sees EPIPE as it would unsandboxed).
    fn fail(&mut self, errno: Option<i32>) -> Step {
        if let Some(errno @ (libc::EFBIG | libc::ENOSPC | libc::EDQUOT | libc::EIO)) = errno {
            if self.direction == Direction::Outbound {
                let error = std::io::Error::from_raw_os_error(errno);
                self.problem = Some(format!("output to the caller stopped: {error}"));
            }
        }
        self.finish()
    }

    /// The failure to report, once.
    pub(crate) fn take_problem(&mut self) -> Option<String> {
        self.problem.take()
    }

    /// Moves everything left until the source ends, waiting on the caller as long as it takes
    /// (the run is over; only its last output is still in the pipes).
    pub(crate) fn drain(&mut self) {
        loop {
            match self.transfer() {
                Step::Moved => {}
                Step::Stopped => return,
                Step::Blocked => match self.interest() {
                    Some((fd, events)) => sys::wait_for(fd, events),
                    None => return,
                },
            }
        }
    }
}
