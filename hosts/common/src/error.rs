//! Why a host stops before its script runs, one variant per stage of the start-up. Every one of
//! them reaches [`crate::start`], which prints it as one line (`HOST: message`) and exits 1.

use std::fmt;
use std::io;
use std::path::PathBuf;

use h_sandbox::{Limit, SandboxError};

#[derive(Debug)]
pub enum StartError {
    /// The command line does not parse.
    Usage(String),
    /// A path the policy needs (the script, a grant, a runtime file) cannot be resolved.
    Path { what: &'static str, path: PathBuf, error: io::Error },
    /// The script exists but is not a file that can be run.
    Script(String),
    /// `--env` names a refused or unset variable.
    Environment(String),
    /// `--allow-exec` names a program that cannot be granted.
    Programs(String),
    /// `--allow-connect` names an endpoint that cannot be resolved.
    Endpoints(String),
    /// A limit asked for is above the inherited hard limit (only root may raise it).
    Limit { resource: &'static str, wanted: Limit, hard: Limit },
    /// The kernel lacks a layer and `--allow-degraded` was not given.
    Degraded(&'static str),
    /// A stage of the sandbox could not be applied.
    Apply(SandboxError),
}

impl fmt::Display for StartError {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Usage(message)
            | StartError::Script(message)
            | StartError::Environment(message)
            | StartError::Programs(message)
            | StartError::Endpoints(message) => out.write_str(message),
            StartError::Path { what, path, error } => write!(out, "{what} {}: {error}", path.display()),
            StartError::Limit { resource, wanted, hard } => {
                write!(out, "rlimit {resource}={wanted} is above the inherited hard limit {hard}")
            }
            StartError::Degraded(message) => out.write_str(message),
            StartError::Apply(error) => write!(out, "{error}"),
        }
    }
}

impl From<SandboxError> for StartError {
    fn from(error: SandboxError) -> Self {
        StartError::Apply(error)
    }
}
