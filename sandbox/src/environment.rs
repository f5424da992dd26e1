//! The script sees only the variables its user named with `--env`.

use std::ffi::OsString;

pub(crate) fn replace(variables: &[(OsString, OsString)]) {
    let inherited: Vec<OsString> = std::env::vars_os().map(|(name, _)| name).collect();
    for name in inherited {
        std::env::remove_var(name);
    }
    for (name, value) in variables {
        std::env::set_var(name, value);
    }
}
