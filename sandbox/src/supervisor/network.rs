//! `--allow-connect`: TCP connections to granted endpoints, made by the supervisor on the
//! script's own socket.
//!
//! - `socket(AF_INET or AF_INET6, SOCK_STREAM)` (the filter has checked the arguments, which are
//!   plain registers): runs as the script's own call when some endpoint is granted, and is
//!   refused by name otherwise.
//! - `connect` never runs as the script's call. The supervisor copies the address once out of
//!   the caller's memory, parses it, and compares address and port with the granted endpoints;
//!   on a match it connects a duplicate of the caller's descriptor (the same socket) to the
//!   *granted* address, built here, so nothing the script changes after the copy is used. The
//!   socket must be a TCP stream socket of the address's family. A socket the script made
//!   blocking is connected without blocking the supervisor: `O_NONBLOCK` for the call, the
//!   flags restored right after, and the caller answered once the connection is made or fails
//!   ([`PendingConnect`]). Every other address (another port, another host, a unix socket) is
//!   refused by name with EPERM.
//!
//! Landlock backs this up: the host's domain refuses every TCP connect, and the supervisor's
//! domain reaches the granted ports only.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::arguments::c_int;
use super::caller::{Caller, Notified};
use super::resolver::{self, Lookup};
use super::sys;

/// What `--allow-connect` granted: the endpoints, and the names among them with the addresses
/// the host resolved them to (which the supervisor answers lookups of).
#[derive(Clone, Debug, Default)]
pub(crate) struct Granted {
    pub(crate) endpoints: Vec<SocketAddr>,
    pub(crate) names: Vec<(String, Vec<IpAddr>)>,
    /// `--learn`: sockets are made and lookups answered as if something were granted, so that
    /// the endpoint the script wants reaches the supervisor and can be named (every connect to
    /// an endpoint not granted is still refused).
    pub(crate) learning: bool,
}

impl Granted {
    fn any_endpoint(&self) -> bool {
        !self.endpoints.is_empty() || self.learning
    }

    fn any_name(&self) -> bool {
        !self.names.is_empty() || self.learning
    }
}

/// What a notified `socket` or `connect` gets.
pub(crate) enum Outcome {
    /// Let the script's own call run (a socket, when some endpoint is granted).
    Continue,
    /// The result of the supervisor's connect: 0, or the errno.
    Made(Result<i64, i32>),
    /// A blocking connect in progress: answered when the socket is writable.
    Pending(PendingConnect),
    /// A lookup of a name: the script's socket now reaches this supervisor's end.
    Lookup(Lookup),
    /// Refused by name, with the reason.
    Refused(String),
    /// A connect to an endpoint that is not granted (refused by name).
    NotGranted(SocketAddr),
    /// The caller is gone: nothing to answer.
    Unreachable,
}

/// A connect the supervisor started for a caller that waits (its socket is blocking).
pub(crate) struct PendingConnect {
    pub(crate) id: u64,
    pub(crate) socket: OwnedFd,
}

impl PendingConnect {
    pub(crate) fn raw(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// The connect's outcome, once the socket is writable (or failed): `SO_ERROR`.
    pub(crate) fn outcome(&self) -> Result<i64, i32> {
        match socket_option(&self.socket, libc::SO_ERROR) {
            Ok(0) => Ok(0),
            Ok(errno) => Err(errno),
            Err(error) => Err(error.raw_os_error().unwrap_or(libc::EIO)),
        }
    }
}

/// `sockaddr_in6` is the longest address an internet socket takes.
const LONGEST_ADDRESS: usize = std::mem::size_of::<libc::sockaddr_in6>();
/// The shortest `sockaddr_in6` the kernel accepts (RFC 2133, without the scope id).
const SHORTEST_IN6: usize = 24;

/// `socket(AF_INET or AF_INET6, SOCK_STREAM, 0 or IPPROTO_TCP)`; glibc's nscd socket
/// (`AF_UNIX`, which fails quietly with EACCES unless a name is granted, as it always did);
/// glibc's netlink route socket (`AF_NETLINK`, which fails quietly with an endpoint granted, so
/// that lookups do not report it, and is refused by name otherwise).
pub(crate) fn socket(granted: &Granted, args: [u64; 6]) -> Outcome {
    match c_int(args[0]) {
        libc::AF_UNIX if !granted.any_name() => return Outcome::Made(Err(libc::EACCES)),
        libc::AF_UNIX => return Outcome::Continue,
        libc::AF_NETLINK if !granted.any_endpoint() => return Outcome::Refused(String::new()),
        libc::AF_NETLINK => return Outcome::Made(Err(libc::EACCES)),
        _ => {}
    }
    if !granted.any_endpoint() {
        return Outcome::Refused("no endpoint is granted (--allow-connect HOST:PORT)".to_string());
    }
    Outcome::Continue
}

/// `connect(fd, address, length)`.
/// `lookups_open`: the lookups the supervisor is answering now.
pub(crate) fn connect(
    granted: &Granted,
    can_inspect: bool,
    notified: Notified,
    args: [u64; 6],
    lookups_open: usize,
) -> Outcome {
    let endpoints = granted.endpoints.as_slice();
    // Refused as any call outside the allow-list (a unix socket's connect too).
    if !granted.any_endpoint() {
        return Outcome::Refused(String::new());
    }
    if !can_inspect {
        return Outcome::Refused("run by root without landlock, the supervisor cannot inspect the sandbox".to_string());
    }
    let Ok(caller) = Caller::open(notified) else { return Outcome::Unreachable };
    let length = c_int(args[2]);
    let Ok(length) = usize::try_from(length) else { return Outcome::Made(Err(libc::EINVAL)) };
    if length < std::mem::size_of::<libc::sa_family_t>() {
        return Outcome::Made(Err(libc::EINVAL));
    }
    let mut bytes = [0u8; LONGEST_ADDRESS];
    let copied = length.min(LONGEST_ADDRESS);
    if caller.read_memory(args[1], &mut bytes[..copied]).is_err() {
        return Outcome::Made(Err(libc::EFAULT));
    }
    let (family, wanted) = match parse(&bytes[..copied]) {
        Ok(parsed) => parsed,
        Err(Unparsed::Family(family)) if i32::from(family) == libc::AF_UNIX && resolver::is_nscd(&bytes[..copied]) => {
            return lookup(granted, &caller, notified, args[0], lookups_open)
        }
        Err(Unparsed::Family(family)) => {
            return Outcome::Refused(format!("{} is not a granted endpoint", family_name(family)))
        }
        Err(Unparsed::Short) => return Outcome::Made(Err(libc::EINVAL)),
    };
    let Some(&granted) = endpoints.iter().find(|granted| same_endpoint(granted, &wanted)) else {
        return Outcome::NotGranted(wanted);
    };
    let socket = match caller.descriptor(args[0]) {
        Ok(socket) => socket,
        Err(error) => return Outcome::Made(Err(error.raw_os_error().unwrap_or(libc::EBADF))),
    };
    let kind = (
        socket_option(&socket, libc::SO_DOMAIN),
        socket_option(&socket, libc::SO_TYPE),
        socket_option(&socket, libc::SO_PROTOCOL),
    );
    let domain = match kind {
        (Ok(domain), Ok(libc::SOCK_STREAM), Ok(libc::IPPROTO_TCP)) => domain,
        (Err(error), _, _) if error.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Outcome::Made(Err(libc::ENOTSOCK))
        }
        _ => return Outcome::Refused(format!("{wanted}: only a TCP socket connects")),
    };
    // As the kernel: the address's family is the socket's.
    if family != domain {
        return Outcome::Made(Err(libc::EAFNOSUPPORT));
    }
    // What was read is the caller's own: the call is still pending.
    if caller.still_waiting().is_err() {
        return Outcome::Unreachable;
    }
    // The granted address (an IPv6 socket reaches an IPv4 one as ::ffff:a.b.c.d).
    let target = if domain == libc::AF_INET6 { to_inet6(granted) } else { granted };
    start(socket, target, notified.id)
}

/// The script connects its nscd socket: with a granted name, the supervisor's own end takes its
/// place; otherwise refused.
fn lookup(granted: &Granted, caller: &Caller, notified: Notified, fd: u64, lookups_open: usize) -> Outcome {
    if !granted.any_name() {
        return Outcome::Refused("nscd's socket: no name is granted (--allow-connect NAME:PORT)".to_string());
    }
    if lookups_open >= resolver::MOST_LOOKUPS {
        return Outcome::Made(Err(libc::EAGAIN));
    }
    let socket = match caller.descriptor(fd) {
        Ok(socket) => socket,
        Err(error) => return Outcome::Made(Err(error.raw_os_error().unwrap_or(libc::EBADF))),
    };
    match (socket_option(&socket, libc::SO_DOMAIN), socket_option(&socket, libc::SO_TYPE)) {
        (Ok(libc::AF_UNIX), Ok(libc::SOCK_STREAM)) => {}
        _ => return Outcome::Refused("nscd's socket: only a unix stream socket connects".to_string()),
    }
    if caller.still_waiting().is_err() {
        return Outcome::Unreachable;
    }
    match resolver::attach(notified.listener, notified.id, fd) {
        Ok(lookup) => Outcome::Lookup(lookup),
        Err(error) => Outcome::Made(Err(error.raw_os_error().unwrap_or(libc::EIO))),
    }
}

/// Connects `socket` to `target`; a blocking socket is connected without blocking.
fn start(socket: OwnedFd, target: SocketAddr, id: u64) -> Outcome {
    let fd = socket.as_raw_fd();
    // SAFETY: fcntl(F_GETFL) takes no pointer.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Outcome::Made(Err(sys::last_error().raw_os_error().unwrap_or(libc::EBADF)));
    }
    let blocking = flags & libc::O_NONBLOCK == 0;
    // SAFETY: as above, F_SETFL takes an int.
    if blocking && unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Outcome::Made(Err(libc::EIO));
    }
    let result = connect_to(fd, target);
    if blocking {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
    }
    match result {
        Ok(()) => Outcome::Made(Ok(0)),
        Err(libc::EINPROGRESS) if blocking => Outcome::Pending(PendingConnect { id, socket }),
        Err(errno) => Outcome::Made(Err(errno)),
    }
}

/// `connect(fd, target)` with an address built here.
fn connect_to(fd: RawFd, target: SocketAddr) -> Result<(), i32> {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid (empty) value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let length = match target {
        SocketAddr::V4(v4) => {
            let address = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), address) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let address = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), address) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: the address is ours, initialised for `length` bytes, and lives for the call.
    let result =
        unsafe { libc::connect(fd, (&storage as *const libc::sockaddr_storage).cast(), length as libc::socklen_t) };
    if result == 0 {
        Ok(())
    } else {
        Err(sys::last_error().raw_os_error().unwrap_or(libc::EIO))
    }
}

fn socket_option(socket: &OwnedFd, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut length = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: one int and its length, both ours, live for the call.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut length,
        )
    };
    if result != 0 {
        return Err(sys::last_error());
    }
    Ok(value)
}

/// `address` as an IPv6 socket connects to it (IPv4 as `::ffff:a.b.c.d`).
fn to_inet6(address: SocketAddr) -> SocketAddr {
    match address {
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
        v6 => v6,
    }
}

/// Address and port equal, an IPv4-mapped IPv6 address being its IPv4 address.
fn same_endpoint(granted: &SocketAddr, wanted: &SocketAddr) -> bool {
    granted.port() == wanted.port() && unmapped(granted.ip()) == unmapped(wanted.ip())
}

/// `ip`, an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 address: how grants and
/// the script's addresses are compared.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

enum Unparsed {
    /// Not an internet address (the family).
    Family(u16),
    /// Shorter than its family's address.
    Short,
}

/// The family and internet address in `bytes` (a copy of the caller's `struct sockaddr`),
/// an IPv4-mapped IPv6 address as IPv4.
fn parse(bytes: &[u8]) -> Result<(libc::c_int, SocketAddr), Unparsed> {
    let field = |at: usize, length: usize| bytes.get(at..at + length).ok_or(Unparsed::Short);
    let family = u16::from_ne_bytes([bytes[0], bytes[1]]);
    let port = |bytes: &[u8]| u16::from_be_bytes([bytes[0], bytes[1]]);
    match i32::from(family) {
        libc::AF_INET => {
            if bytes.len() < std::mem::size_of::<libc::sockaddr_in>() {
                return Err(Unparsed::Short);
            }
            let ip = field(4, 4)?;
            let ip = IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]));
            Ok((libc::AF_INET, SocketAddr::new(ip, port(field(2, 2)?))))
        }
        libc::AF_INET6 => {
            if bytes.len() < SHORTEST_IN6 {
                return Err(Unparsed::Short);
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(field(8, 16)?);
            let ip = Ipv6Addr::from(octets);
            Ok((libc::AF_INET6, SocketAddr::new(unmapped(IpAddr::V6(ip)), port(field(2, 2)?))))
        }
        _ => Err(Unparsed::Family(family)),
    }
}

fn family_name(family: u16) -> String {
    match i32::from(family) {
        libc::AF_UNIX => "a unix socket".to_string(),
        libc::AF_UNSPEC => "AF_UNSPEC (disconnect)".to_string(),
        other => format!("address family {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; 16];
        bytes[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        bytes[2..4].copy_from_slice(&port.to_be_bytes());
        bytes[4..8].copy_from_slice(&ip);
        bytes
    }

    #[test]
    fn parses_what_the_kernel_reads() {
        let parsed = parse(&inet([127, 0, 0, 1], 8080)).ok().unwrap();
        assert_eq!(parsed, (libc::AF_INET, "127.0.0.1:8080".parse().unwrap()));
        assert!(matches!(parse(&inet([127, 0, 0, 1], 80)[..8]), Err(Unparsed::Short)));
        let mut mapped = vec![0u8; 28];
        mapped[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        mapped[2..4].copy_from_slice(&443u16.to_be_bytes());
        mapped[8..24].copy_from_slice(&Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets());
        assert_eq!(parse(&mapped).ok().unwrap(), (libc::AF_INET6, "10.0.0.1:443".parse().unwrap()));
        let unix = (libc::AF_UNIX as u16).to_ne_bytes();
        assert!(matches!(parse(&[unix[0], unix[1], b'/', 0]), Err(Unparsed::Family(1))));
    }

    #[test]
    fn endpoints_match_on_address_and_port() {
        let granted: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(same_endpoint(&granted, &"127.0.0.1:8080".parse().unwrap()));
        assert!(!same_endpoint(&granted, &"127.0.0.2:8080".parse().unwrap()));
        assert!(!same_endpoint(&granted, &"127.0.0.1:8081".parse().unwrap()));
        assert!(same_endpoint(&granted, &"[::ffff:127.0.0.1]:8080".parse().unwrap()));
        assert!(!same_endpoint(&"[::1]:8080".parse().unwrap(), &granted));
    }
}
