//! The caller's terminal while a private pseudo-terminal stands in for it, as `sudo` does
//! with `use_pty`: the caller's terminal is switched to raw mode (so that every key, Ctrl-C
//! included, goes to the private terminal, whose line discipline then acts for the script),
//! and restored exactly when the run ends.

use std::io;
use std::os::fd::RawFd;

use super::stdio::PAGE;
use super::sys;

/// The caller's terminal in raw mode, with the modes to restore.
pub(crate) struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

/// The terminal modes of `fd`, if it is a terminal.
pub(crate) fn modes(fd: RawFd) -> Option<libc::termios> {
    // SAFETY: an all-zero termios is valid storage; tcgetattr fills it or fails.
    let mut modes: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `modes` is writable; a non-terminal fails with ENOTTY.
    (unsafe { libc::tcgetattr(fd, &mut modes) } == 0).then_some(modes)
}

/// Whether the supervisor's process group owns the terminal on `fd` (a job in the background
/// must not read it or change its modes).
pub(crate) fn in_foreground(fd: RawFd) -> bool {
    // SAFETY: tcgetpgrp and getpgrp take and return integers.
    unsafe { libc::tcgetpgrp(fd) == libc::getpgrp() }
}

/// The complete lines and end-of-file marks already typed on `fd`, a terminal in canonical mode,
/// taken before the switch to raw mode, which would make each end-of-file mark (a typed ^D, or
/// the one `script` sends when its input ends) readable as a NUL byte: the lines as they were
/// typed, each mark as the `VEOF` character, so that the private terminal, which has the same
/// modes, makes them an end of file again. At most a [`PAGE`]; an unfinished line stays for
/// the raw reads.
fn typed_ahead(fd: RawFd, modes: &libc::termios) -> Vec<u8> {
    let mut typed = Vec::new();
    if modes.c_lflag & libc::ICANON == 0 {
        return typed;
    }
    let mut line = [0u8; PAGE];
    while typed.len() < PAGE {
        let mut ready = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd of ours, for the call. In canonical mode a terminal is readable
        // only with a whole line or an end-of-file mark queued, so the read below cannot block.
        if unsafe { libc::poll(&mut ready, 1, 0) } != 1 || ready.revents & libc::POLLIN == 0 {
            break;
        }
        let room = PAGE - typed.len();
        // SAFETY: `line` is writable for `room` bytes.
        let read = unsafe { libc::read(fd, line.as_mut_ptr().cast(), room) };
        match usize::try_from(read) {
            Ok(0) => typed.push(modes.c_cc[libc::VEOF]),
            Ok(length) => typed.extend_from_slice(&line[..length]),
            Err(_) => break,
        }
    }
    typed
}

impl RawMode {
    /// Switches `fd` to raw mode; `None` when it is not a terminal or cannot be changed. Also
    /// returns what was typed ahead in canonical mode ([`typed_ahead`]), for the private terminal.
    pub(crate) fn enter(fd: RawFd) -> Option<(RawMode, Vec<u8>)> {
        let saved = modes(fd)?;
        let typed = typed_ahead(fd, &saved);
        let mut raw = saved;
        raw.c_iflag &= !(libc::IGNBRK
            | libc::BRKINT
            | libc::PARMRK
            | libc::ISTRIP
            | libc::INLCR
            | libc::IGNCR
            | libc::ICRNL
            | libc::IXON);
        raw.c_oflag &= !libc::OPOST;
        raw.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: `raw` is a complete termios copied from the terminal's own.
        (unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &raw) } == 0).then_some((RawMode { fd, saved }, typed))
    }

    /// Puts the caller's modes back; input typed meanwhile stays queued for the caller.
    pub(crate) fn restore(&self) {
        // SAFETY: `saved` is the termios read from this terminal.
        unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved) };
    }
}

/// Copies the window size of the caller's terminal to the private one (the kernel then sends
/// SIGWINCH to the script's process group).
pub(crate) fn copy_window_size(from: RawFd, to: RawFd) {
    // SAFETY: an all-zero winsize is valid storage.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills `size`; TIOCSWINSZ reads it.
    unsafe {
        if sys::ioctl(from, libc::TIOCGWINSZ, std::ptr::addr_of_mut!(size) as usize) == 0 {
            sys::ioctl(to, libc::TIOCSWINSZ, std::ptr::addr_of!(size) as usize);
        }
    }
}

/// Applies `modes` to the private terminal (its slave side), before the script starts.
pub(crate) fn set_modes(fd: RawFd, modes: &libc::termios) -> io::Result<()> {
    // SAFETY: `modes` is a complete termios read from the caller's terminal.
    sys::check(unsafe { libc::tcsetattr(fd, libc::TCSANOW, modes) }).map(|_| ())
}
