//! Running a command on a fresh pseudo-terminal, as a person at a terminal would: the command
//! leads a new session whose controlling terminal is the pseudo-terminal, everything it writes
//! (stdout and stderr alike) is read from the master side, and keys are typed when the output
//! shows a prompt.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::case::Typed;
use crate::outcome::Outcome;

fn open_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: a constant path; the returned descriptors are fresh and owned by us.
    unsafe {
        let master = libc::open(c"/dev/ptmx".as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if master < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let master = OwnedFd::from_raw_fd(master);
        let unlock: libc::c_int = 0;
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let slave = libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if slave < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let size = libc::winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
        libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size);
        Ok((master, OwnedFd::from_raw_fd(slave)))
    }
}

/// Runs `command` on a new pseudo-terminal, with `typed_ahead` already typed, typing each `send`
/// text once the output contains its `after` text (searched after the previous one matched),
/// killing it after `timeout`. The command must not have been put in a process group of its own:
/// it becomes a session leader.
pub fn execute_on_terminal(mut command: Command, typed_ahead: &str, send: &[Typed], timeout: Duration) -> Outcome {
    let failed = |why: String| Outcome { status: None, stdout: String::new(), stderr: why };
    let (master, slave) = match open_pair() {
        Ok(pair) => pair,
        Err(error) => return failed(format!("cannot open a pseudo-terminal: {error}")),
    };
    if !typed_ahead.is_empty() {
        // SAFETY: the text is valid for its length; the master is ours. The terminal's line
        // discipline takes the keys now, before any process reads them.
        let written = unsafe { libc::write(master.as_raw_fd(), typed_ahead.as_ptr().cast(), typed_ahead.len()) };
        if usize::try_from(written).ok() != Some(typed_ahead.len()) {
            return failed(format!("cannot type ahead on the terminal: {}", std::io::Error::last_os_error()));
        }
    }
    let clone = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
    match (clone(&slave), clone(&slave), clone(&slave)) {
        (Ok(stdin), Ok(stdout), Ok(stderr)) => command.stdin(stdin).stdout(stdout).stderr(stderr),
        _ => return failed("cannot duplicate the terminal".to_string()),
    };
    // SAFETY: setsid and ioctl are async-signal-safe and touch only the child's own state.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return failed(format!("spawning {command:?}: {error}")),
    };
    drop(slave);
    let mut output: Vec<u8> = Vec::new();
    let mut searched_from = 0usize;
    let mut pending = send.iter();
    let mut next = pending.next();
    let deadline = Instant::now() + timeout;
    let mut status = None;
    let mut drain_until: Option<Instant> = None;
    loop {
        let mut poll = libc::pollfd { fd: master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd we own, 20 ms.
        let ready = unsafe { libc::poll(&mut poll, 1, 20) };
        if ready > 0 {
            let mut buffer = [0u8; 4096];
            // SAFETY: the buffer is writable for its length.
            let read = unsafe { libc::read(master.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
            if read <= 0 {
                // EIO: no process holds the terminal any more.
                if status.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            } else {
                output.extend_from_slice(&buffer[..read as usize]);
            }
        }
        if let Some(typed) = next {
            let text = String::from_utf8_lossy(&output[searched_from..]).into_owned();
            if let Some(position) = text.find(&typed.after) {
                searched_from += position + typed.after.len();
                // SAFETY: the text is valid for its length; the master is ours.
                unsafe { libc::write(master.as_raw_fd(), typed.text.as_ptr().cast(), typed.text.len()) };
                next = pending.next();
            }
        }
        if status.is_none() {
            if let Ok(Some(exit)) = child.try_wait() {
                status = Some(exit);
                drain_until = Some(Instant::now() + Duration::from_secs(2));
            }
        }
        if drain_until.is_some_and(|until| Instant::now() > until) {
            break;
        }
        if status.is_none() && Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
    }
    Outcome { status, stdout: String::from_utf8_lossy(&output).into_owned(), stderr: String::new() }
}
