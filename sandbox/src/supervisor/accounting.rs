//! The run's own CPU and memory, across every process of it, where the kernel's limits bind each
//! process alone (hsh: every subshell gets its own RLIMIT_CPU and RLIMIT_DATA). The supervisor
//! samples the processes of the run's session from /proc (its only filesystem access, granted
//! read-only to its landlock domain for this) and ends the run when it has used its budget.
//!
//! CPU: the time of every live process of the session, their waited-for children's (`cutime`,
//! `cstime`: a child's time moves there when its parent reaps it) and the orphans the supervisor
//! reaped itself (its own RUSAGE_CHILDREN). Memory: resident pages that are not shared with a
//! file (`statm`'s resident − shared), summed over the session, so pages a fork shares are
//! counted in each process (an overestimate, never an underestimate).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::sys;

/// How often the run is sampled.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// What the whole run may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunBudget {
    /// CPU seconds of every process of the run together.
    pub cpu_seconds: Option<u64>,
    /// Bytes of private resident memory of every process of the run together.
    pub memory_bytes: Option<u64>,
}

/// A budget the run has spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spent {
    Cpu(u64),
    Memory(u64),
}

pub(crate) struct Accounting {
    budget: RunBudget,
    proc: OwnedFd,
    session: libc::pid_t,
    ticks_per_second: u64,
    page_size: u64,
    last: Instant,
}

impl Accounting {
    /// Opens /proc for a run whose session is `session`. Called before the supervisor hardens.
    pub(crate) fn open(budget: RunBudget, session: libc::pid_t) -> io::Result<Accounting> {
        let proc = sys::open(c"/proc", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)?;
        // SAFETY: sysconf takes an integer name.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        Ok(Accounting {
            budget,
            proc,
            session,
            ticks_per_second: u64::try_from(ticks).unwrap_or(100).max(1),
            page_size: u64::try_from(page).unwrap_or(4096),
            last: Instant::now(),
        })
    }

    /// How long the supervisor may wait before the next sample.
    pub(crate) fn timeout(&self) -> Duration {
        INTERVAL.saturating_sub(self.last.elapsed())
    }

    /// Samples the run if the interval has passed; the budget it has spent, if any.
    pub(crate) fn check(&mut self) -> Option<Spent> {
        if self.last.elapsed() < INTERVAL {
            return None;
        }
        self.last = Instant::now();
        let (ticks, pages) = self.sample();
        if let Some(seconds) = self.budget.cpu_seconds {
            let reaped_micros = sys::reaped_cpu_micros();
            let used_micros = ticks * 1_000_000 / self.ticks_per_second + reaped_micros;
            if used_micros > seconds * 1_000_000 {
                return Some(Spent::Cpu(seconds));
            }
        }
        if let Some(bytes) = self.budget.memory_bytes {
            if pages * self.page_size > bytes {
                return Some(Spent::Memory(bytes));
            }
        }
        None
    }

    /// (CPU ticks, private resident pages) of every process of the session.
    fn sample(&self) -> (u64, u64) {
        let (mut ticks, mut pages) = (0u64, 0u64);
        let dir = self.proc.as_raw_fd();
        // SAFETY: rewinding a directory descriptor we own.
        unsafe { libc::lseek(dir, 0, libc::SEEK_SET) };
        let mut entries = [0u8; 16 * 1024];
        loop {
            // SAFETY: getdents64 fills the buffer with records; it is ours and writable.
            let read = unsafe { libc::syscall(libc::SYS_getdents64, dir, entries.as_mut_ptr(), entries.len()) };
            let Ok(read) = usize::try_from(read) else { break };
            if read == 0 {
                break;
            }
            let mut offset = 0;
            while offset + 19 < read {
                let record_length = usize::from(u16::from_ne_bytes([entries[offset + 16], entries[offset + 17]]));
                let name = &entries[offset + 19..offset + record_length.max(20)];
                let name = name.split(|&byte| byte == 0).next().unwrap_or_default();
                if !name.is_empty() && name.iter().all(u8::is_ascii_digit) {
                    if let Some((process_ticks, process_pages)) = self.process(name) {
                        ticks += process_ticks;
                        pages += process_pages;
                    }
                }
                if record_length == 0 {
                    break;
                }
                offset += record_length;
            }
        }
        (ticks, pages)
    }

    /// A process of the run: its CPU ticks (its own and its reaped children's) and its private
    /// resident pages; `None` for a process of another session.
    fn process(&self, pid: &[u8]) -> Option<(u64, u64)> {
        let mut path = Vec::with_capacity(pid.len() + 7);
        path.extend_from_slice(pid);
        path.extend_from_slice(b"/stat\0");
        let path = std::ffi::CStr::from_bytes_with_nul(&path).ok()?;
        let mut stat = [0u8; 1024];
        let length = sys::read_small(self.proc.as_raw_fd(), path, &mut stat)?;
        let text = std::str::from_utf8(&stat[..length]).ok()?;
        // Fields after the command name (which may hold spaces): state is field 3.
        let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |number: usize| fields.get(number - 3).and_then(|value| value.parse::<u64>().ok());
        if field(6)? != u64::try_from(self.session).ok()? {
            return None;
        }
        let ticks = field(14)? + field(15)? + field(16)? + field(17)?;
        let mut path = Vec::with_capacity(pid.len() + 8);
        path.extend_from_slice(pid);
        path.extend_from_slice(b"/statm\0");
        let path = std::ffi::CStr::from_bytes_with_nul(&path).ok()?;
        let mut statm = [0u8; 256];
        let pages = sys::read_small(self.proc.as_raw_fd(), path, &mut statm)
            .and_then(|length| {
                let text = std::str::from_utf8(&statm[..length]).ok()?;
                let values: Vec<u64> = text.split_whitespace().filter_map(|value| value.parse().ok()).collect();
                Some(values.get(1)?.saturating_sub(*values.get(2)?))
            })
            .unwrap_or(0);
        Some((ticks, pages))
    }
}
