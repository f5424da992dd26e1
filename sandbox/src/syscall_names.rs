//! Every syscall name of each architecture, sorted by number, generated once and shared by all
//! generated programs of that architecture (a denial message names the call).

#[rustfmt::skip]
#[path = "generated/syscall_names_x86_64.rs"]
mod x86_64;
#[rustfmt::skip]
#[path = "generated/syscall_names_aarch64.rs"]
mod aarch64;

pub use aarch64::AARCH64;
pub use x86_64::X86_64;
