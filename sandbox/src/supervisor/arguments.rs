//! How the kernel reads a notified call's registers. An `int` argument (a descriptor, flags, a
//! family, a length) is the low 32 bits of its register: the upper half is whatever the caller
//! left there (glibc passes `AT_FDCWD` zero-extended), so reading all 64 bits would misread it.
//! This is the kernel's own reading, not a check; the filters compare all 64 bits where they
//! decide.

/// `AT_FDCWD` as a register holds it after [`int`].
pub(crate) const AT_FDCWD: u64 = libc::AT_FDCWD as i64 as u64;

/// An `int` argument as the kernel reads it.
pub(crate) fn c_int(register: u64) -> libc::c_int {
    register as u32 as libc::c_int
}

/// An `int` argument as the kernel reads it, sign-extended to a register again (to compare
/// with constants such as [`AT_FDCWD`] and flag masks).
pub(crate) fn int(register: u64) -> u64 {
    c_int(register) as i64 as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_low_half_is_read() {
        assert_eq!(int(0xffff_ff9c), AT_FDCWD, "AT_FDCWD passed zero-extended");
        assert_eq!(int(AT_FDCWD), AT_FDCWD);
        assert_eq!(c_int(0xdead_beef_0000_0003), 3);
        assert_eq!(c_int(0xffff_ffff), -1);
    }
}
