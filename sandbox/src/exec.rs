//! Executing the host's interpreter from inside the sandbox (hsh runs bash, hnode runs node).
//!
//! A host that runs a real interpreter binary checks it with [`Interpreter::locate`] before
//! [`crate::apply`], and replaces itself with it through [`Interpreter::exec`] after: the
//! interpreter starts with every stage already in force (rlimits, capabilities, no_new_privs,
//! landlock and seccomp are all inherited across exec), and sees only the scrubbed environment.
//!
//! The exec itself is `execveat(EXEC_FD, "", argv, envp, AT_EMPTY_PATH)` on a descriptor opened
//! `O_PATH | O_CLOEXEC` at the fixed number [`EXEC_FD`], so a host's filter can allow exactly that
//! call (descriptor and flags checked) and no other exec of the launcher's. The descriptor is
//! close-on-exec and does not leak into the interpreter. `O_PATH` opens are not subject to
//! landlock, but the exec is: landlock's execute right (granted only on the interpreter and its
//! libraries) is checked when the kernel opens the file for execution.
//!
//! [`crate::apply`] closes every descriptor above stderr, so the interpreter is opened after it;
//! [`Interpreter::locate`] checks it beforehand so that a missing interpreter is a clear error
//! before anything else happens.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The descriptor the interpreter is opened at for `execveat`; the filters of hosts that exec
/// allow `execveat` on this descriptor only (`EXEC_FD` in `filter/src/constants.rs`).
pub const EXEC_FD: libc::c_int = 3;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot access interpreter {path}: {source}")]
    Missing { path: PathBuf, source: std::io::Error },
    #[error("interpreter {0} is not an executable regular file")]
    NotExecutable(PathBuf),
    #[error("an argument or environment entry for the interpreter contains a NUL byte")]
    NulByte,
    #[error("descriptor {EXEC_FD} is in use after the sandbox was applied; refusing to replace it")]
    DescriptorBusy,
    #[error("cannot open interpreter {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot move the interpreter's descriptor to {EXEC_FD}: {0}")]
    Move(std::io::Error),
    #[error("cannot restore default signal handling before exec: {0}")]
    Signals(std::io::Error),
    #[error("cannot execute interpreter {path}: {source}")]
    Exec { path: PathBuf, source: std::io::Error },
}

/// An interpreter binary found at build time, checked and ready to be executed.
#[derive(Debug, Clone)]
pub struct Interpreter {
    path: PathBuf,
    c_path: CString,
}

fn c_string(bytes: &OsStr) -> Result<CString, ExecError> {
    CString::new(bytes.as_bytes()).map_err(|_| ExecError::NulByte)
}

impl Interpreter {
    /// Checks, before the sandbox is applied, that `path` is an executable regular file.
    pub fn locate(path: &Path) -> Result<Interpreter, ExecError> {
        let metadata =
            std::fs::metadata(path).map_err(|source| ExecError::Missing { path: path.to_path_buf(), source })?;
        if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
            return Err(ExecError::NotExecutable(path.to_path_buf()));
        }
        Ok(Interpreter { path: path.to_path_buf(), c_path: c_string(path.as_os_str())? })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the process with the interpreter, `argv[0]` being the interpreter's path and
    /// `arguments` the rest; the environment is the process's own (after [`crate::apply`], the
    /// scrubbed one). Call only after [`crate::apply`]. Returns only on failure.
    pub fn exec(&self, arguments: &[OsString]) -> ExecError {
        match self.try_exec(arguments) {
            Ok(never) => match never {},
            Err(error) => error,
        }
    }

    fn try_exec(&self, arguments: &[OsString]) -> Result<std::convert::Infallible, ExecError> {
        let mut argv: Vec<CString> = Vec::with_capacity(arguments.len() + 1);
        argv.push(self.c_path.clone());
        for argument in arguments {
            argv.push(c_string(argument)?);
        }
        let mut envp: Vec<CString> = Vec::new();
        for (name, value) in std::env::vars_os() {
            let mut entry = name.into_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            envp.push(CString::new(entry).map_err(|_| ExecError::NulByte)?);
        }
        let mut argv_pointers: Vec<*const libc::c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
        argv_pointers.push(std::ptr::null());
        let mut envp_pointers: Vec<*const libc::c_char> = envp.iter().map(|entry| entry.as_ptr()).collect();
        envp_pointers.push(std::ptr::null());

        self.open_at_exec_fd()?;
        reset_signals()?;
        let empty = c"";
        // SAFETY: EXEC_FD is an O_PATH descriptor of the interpreter; `empty`, `argv_pointers` and
        // `envp_pointers` are NUL-terminated strings and NULL-terminated arrays that outlive the
        // call (on success the process image is replaced and nothing of ours is used again).
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                EXEC_FD,
                empty.as_ptr(),
                argv_pointers.as_mut_ptr(),
                envp_pointers.as_mut_ptr(),
                libc::AT_EMPTY_PATH,
            );
        }
        Err(ExecError::Exec { path: self.path.clone(), source: std::io::Error::last_os_error() })
    }

    /// Opens the interpreter `O_PATH | O_CLOEXEC` at exactly [`EXEC_FD`].
    fn open_at_exec_fd(&self) -> Result<(), ExecError> {
        // SAFETY: F_GETFD only reads the descriptor's flags; an unused number fails with EBADF.
        if unsafe { libc::fcntl(EXEC_FD, libc::F_GETFD) } != -1 {
            return Err(ExecError::DescriptorBusy);
        }
        // openat, as the filters allow, whatever call the C library's open makes (musl's is open).
        // SAFETY: `c_path` is a NUL-terminated path; O_PATH opens neither reads nor executes.
        let descriptor = unsafe { libc::openat(libc::AT_FDCWD, self.c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if descriptor < 0 {
            return Err(ExecError::Open { path: self.path.clone(), source: std::io::Error::last_os_error() });
        }
        if descriptor == EXEC_FD {
            return Ok(());
        }
        // Only when stdin, stdout or stderr was closed does the open land below EXEC_FD.
        // SAFETY: both descriptors are ours: `descriptor` was just opened and EXEC_FD is unused.
        let moved = unsafe { libc::dup3(descriptor, EXEC_FD, libc::O_CLOEXEC) };
        let error = std::io::Error::last_os_error();
        // SAFETY: `descriptor` is ours and no longer needed.
        unsafe { libc::close(descriptor) };
        if moved != EXEC_FD {
            return Err(ExecError::Move(error));
        }
        Ok(())
    }
}

/// The Rust runtime ignores SIGPIPE and an ignored disposition survives exec: the interpreter
/// gets SIGPIPE back at its default (a shell pipeline's writer ends quietly, as outside h).
/// SIGXFSZ stays ignored (see `limits`): a write past `fsize` fails with EFBIG. No signal stays
/// blocked. SIGSYS is left alone: the filters forbid changing it.
fn reset_signals() -> Result<(), ExecError> {
    // SAFETY: SIG_DFL is a valid disposition for SIGPIPE; no handler code is involved.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(ExecError::Signals(std::io::Error::last_os_error()));
    }
    // SAFETY: the set is ours to initialise and is only read by sigprocmask during the call.
    let result = unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut())
    };
    if result != 0 {
        return Err(ExecError::Signals(std::io::Error::last_os_error()));
    }
    Ok(())
}
