//! Resource limits. Each one is set with soft = hard, so the script cannot raise it again.

use std::fmt;

/// The C library's type for a resource number: glibc has its own, musl an `int`.
#[cfg(target_env = "gnu")]
pub(crate) type RawResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub(crate) type RawResource = libc::c_int;

/// Every resource Linux limits, by the name users write after `-r` (the lower-case name
/// without the `RLIMIT_` prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

/// All resources, in the order `--print-policy` lists them.
pub const RLIMIT_RESOURCES: [Resource; 16] = [
    Resource::As,
    Resource::Core,
    Resource::Cpu,
    Resource::Data,
    Resource::Fsize,
    Resource::Locks,
    Resource::Memlock,
    Resource::Msgqueue,
    Resource::Nice,
    Resource::Nofile,
    Resource::Nproc,
    Resource::Rss,
    Resource::Rtprio,
    Resource::Rttime,
    Resource::Sigpending,
    Resource::Stack,
];

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::As => "as",
            Resource::Core => "core",
            Resource::Cpu => "cpu",
            Resource::Data => "data",
            Resource::Fsize => "fsize",
            Resource::Locks => "locks",
            Resource::Memlock => "memlock",
            Resource::Msgqueue => "msgqueue",
            Resource::Nice => "nice",
            Resource::Nofile => "nofile",
            Resource::Nproc => "nproc",
            Resource::Rss => "rss",
            Resource::Rtprio => "rtprio",
            Resource::Rttime => "rttime",
            Resource::Sigpending => "sigpending",
            Resource::Stack => "stack",
        }
    }

    /// The unit of the value, for humans.
    pub fn unit(self) -> &'static str {
        match self {
            Resource::As | Resource::Core | Resource::Data | Resource::Fsize => "bytes",
            Resource::Memlock | Resource::Msgqueue | Resource::Rss | Resource::Stack => "bytes",
            Resource::Cpu => "seconds",
            Resource::Rttime => "microseconds",
            Resource::Nofile => "descriptors",
            Resource::Nproc => "processes and threads of the user",
            Resource::Locks => "locks",
            Resource::Nice | Resource::Rtprio => "priority",
            Resource::Sigpending => "queued signals",
        }
    }

    pub fn from_name(name: &str) -> Option<Resource> {
        RLIMIT_RESOURCES.into_iter().find(|resource| resource.name() == name)
    }

    fn raw(self) -> RawResource {
        match self {
            Resource::As => libc::RLIMIT_AS,
            Resource::Core => libc::RLIMIT_CORE,
            Resource::Cpu => libc::RLIMIT_CPU,
            Resource::Data => libc::RLIMIT_DATA,
            Resource::Fsize => libc::RLIMIT_FSIZE,
            Resource::Locks => libc::RLIMIT_LOCKS,
            Resource::Memlock => libc::RLIMIT_MEMLOCK,
            Resource::Msgqueue => libc::RLIMIT_MSGQUEUE,
            Resource::Nice => libc::RLIMIT_NICE,
            Resource::Nofile => libc::RLIMIT_NOFILE,
            Resource::Nproc => libc::RLIMIT_NPROC,
            Resource::Rss => libc::RLIMIT_RSS,
            Resource::Rtprio => libc::RLIMIT_RTPRIO,
            Resource::Rttime => libc::RLIMIT_RTTIME,
            Resource::Sigpending => libc::RLIMIT_SIGPENDING,
            Resource::Stack => libc::RLIMIT_STACK,
        }
    }

    /// The limit currently in force (the hard one, which bounds what the host may set).
    pub fn current(self) -> std::io::Result<(Limit, Limit)> {
        let mut value = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one `struct rlimit` into `value`, which we own.
        let result = unsafe { libc::getrlimit(self.raw(), &mut value) };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((Limit::from_raw(value.rlim_cur), Limit::from_raw(value.rlim_max)))
    }
}

/// A limit value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Value(u64),
    Infinity,
}

impl Limit {
    fn from_raw(raw: libc::rlim_t) -> Limit {
        if raw == libc::RLIM_INFINITY {
            Limit::Infinity
        } else {
            Limit::Value(raw)
        }
    }

    fn raw(self) -> libc::rlim_t {
        match self {
            Limit::Value(value) => value,
            Limit::Infinity => libc::RLIM_INFINITY,
        }
    }

    /// Parses `VALUE` as the command line takes it: a number with an optional K, M or G
    /// suffix (powers of 1024), or `inf`.
    pub fn parse(text: &str) -> Option<Limit> {
        if text == "inf" || text == "infinity" || text == "unlimited" {
            return Some(Limit::Infinity);
        }
        let (digits, multiplier) = match text.as_bytes().last()? {
            b'K' | b'k' => (&text[..text.len() - 1], 1u64 << 10),
            b'M' | b'm' => (&text[..text.len() - 1], 1u64 << 20),
            b'G' | b'g' => (&text[..text.len() - 1], 1u64 << 30),
            _ => (text, 1),
        };
        if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        let value = digits.parse::<u64>().ok()?.checked_mul(multiplier)?;
        if value == libc::RLIM_INFINITY {
            return None;
        }
        Some(Limit::Value(value))
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Infinity => write!(f, "inf"),
            Limit::Value(value) if *value >= 1 << 30 && value % (1 << 30) == 0 => {
                write!(f, "{}G", value >> 30)
            }
            Limit::Value(value) if *value >= 1 << 20 && value % (1 << 20) == 0 => {
                write!(f, "{}M", value >> 20)
            }
            Limit::Value(value) if *value >= 1 << 10 && value % (1 << 10) == 0 => {
                write!(f, "{}K", value >> 10)
            }
            Limit::Value(value) => write!(f, "{value}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("cannot set {resource} to {limit}: {source}")]
    Set { resource: &'static str, limit: Limit, source: std::io::Error },
    #[error("cannot ignore SIGXFSZ: {0}")]
    IgnoreSigxfsz(std::io::Error),
}

pub(crate) fn apply(limits: &[(Resource, Limit)]) -> Result<(), RlimitError> {
    for &(resource, limit) in limits {
        let value = libc::rlimit { rlim_cur: limit.raw(), rlim_max: limit.raw() };
        // SAFETY: setrlimit reads one `struct rlimit` that lives for the call.
        let result = unsafe { libc::setrlimit(resource.raw(), &value) };
        if result != 0 {
            return Err(RlimitError::Set { resource: resource.name(), limit, source: std::io::Error::last_os_error() });
        }
    }
    // A write past RLIMIT_FSIZE then fails with EFBIG, which the interpreter reports, instead of
    // killing the host (the original died this way as soon as stdout was a regular file).
    // SAFETY: SIG_IGN is a valid disposition for SIGXFSZ; no handler code is involved.
    let previous = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        return Err(RlimitError::IgnoreSigxfsz(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes_and_infinity() {
        assert_eq!(Limit::parse("0"), Some(Limit::Value(0)));
        assert_eq!(Limit::parse("64"), Some(Limit::Value(64)));
        assert_eq!(Limit::parse("4K"), Some(Limit::Value(4096)));
        assert_eq!(Limit::parse("2M"), Some(Limit::Value(2 << 20)));
        assert_eq!(Limit::parse("1G"), Some(Limit::Value(1 << 30)));
        assert_eq!(Limit::parse("inf"), Some(Limit::Infinity));
        assert_eq!(Limit::parse("12x"), None);
        assert_eq!(Limit::parse("K"), None);
        assert_eq!(Limit::parse("-1"), None);
        assert_eq!(Limit::parse("99999999999999999999G"), None);
    }

    #[test]
    fn every_resource_round_trips_by_name() {
        for resource in RLIMIT_RESOURCES {
            assert_eq!(Resource::from_name(resource.name()), Some(resource));
        }
        assert_eq!(Resource::from_name("bogus"), None);
    }
}
