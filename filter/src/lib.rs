//! h's seccomp filter compiler and verifier.
//!
//! The policies in `filters/*.toml` are data: an allow-list per host, each rule with the reason
//! it exists. This crate turns them into the cBPF programs the hosts carry, and proves every
//! committed program against its policy:
//!
//! - [`schema`]: the TOML files as written, and loading one with its includes;
//! - [`constants`]: the named constants a rule may use, per architecture;
//! - [`arch`]: the architectures compiled for and their syscall tables;
//! - [`resolve`]: a policy for one architecture, names and constants replaced by numbers;
//! - [`assembler`] and [`emit`]: the cBPF program (architecture and x32 checks, binary-search
//!   dispatch on the syscall number, one block of argument checks per syscall);
//! - [`render`]: the Rust source of a program, and reading its instructions back;
//! - [`verify`]: the verifier, which runs the committed instructions in h-sandbox's evaluator
//!   (the one the supervisor uses at run time) against the policy's meaning;
//! - [`codegen`]: the repository's programs, written or checked for staleness.
//!
//! It is a development-time crate: `cargo xtask codegen` and `cargo xtask verify` are thin
//! commands over it, and no runtime crate depends on it (the hosts include the generated
//! programs; h-sandbox has the evaluator).
//!
//! Why not seccompiler: it checks the architecture but not the x32 bit (rust-vmm/seccompiler#74),
//! and it has one match action per filter, while h needs USER_NOTIF for refusals and first-only
//! calls, ERRNO for a few tamper rules and KILL for the supervisor's own filter.

use std::path::PathBuf;

pub mod arch;
pub mod assembler;
pub mod codegen;
pub mod constants;
pub mod emit;
pub mod render;
pub mod resolve;
pub mod schema;
pub mod verify;

pub use arch::{Arch, ARCHES};

/// An error of the repository-wide operations ([`codegen`], [`verify::verify_all`]): which host,
/// architecture or file, with the concern's own error as its source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    #[error("{host} for {arch}")]
    Resolve {
        host: String,
        arch: Arch,
        #[source]
        source: resolve::ResolveError,
    },
    #[error("{host} for {arch}")]
    Emit {
        host: String,
        arch: Arch,
        #[source]
        source: emit::EmitError,
    },
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: render::ParseError,
    },
    #[error(transparent)]
    Verify(#[from] verify::VerifyError),
    #[error("generated seccomp programs are stale (run `cargo xtask codegen`): {}", .0.join(", "))]
    Stale(Vec<String>),
}
