//! Lookups of granted names (`--allow-connect NAME:PORT`), answered by the supervisor in nscd's
//! place.
//!
//! glibc's `getaddrinfo` asks the name service cache daemon first: a unix stream socket
//! connected to `/var/run/nscd/socket`, one request (`GETAI` and the name; `GETHOSTBYNAME` for
//! IPv4 alone, `GETHOSTBYNAMEv6` from `gethostbyname2`), one answer (the addresses), and a
//! "no such name" answer is final (no files, no DNS). When the script connects
//! its socket there, the supervisor puts one end of a socket pair of its own in its place
//! (`SECCOMP_IOCTL_NOTIF_ADDFD`, at the same descriptor number), answers the connect with
//! success, and answers the request on the other end: the addresses the host resolved at start
//! for a granted name, "no such name" for every other one. Any other request (the shared
//! mapping, users, groups) gets the connection closed, which glibc takes as "nscd is not
//! running". No lookup leaves the machine; the name a script asks for reaches only this
//! supervisor, which names it on stderr when it is refused.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::arguments::c_int;
use super::learning::Learned;
use super::sys;

/// Where glibc's nscd client connects (both spellings of the run directory).
const NSCD_SOCKETS: [&[u8]; 2] = [b"/var/run/nscd/socket", b"/run/nscd/socket"];
/// `NSCD_VERSION`, the version of every request and answer.
const NSCD_VERSION: i32 = 2;
/// `GETHOSTBYNAME`: IPv4 addresses (getaddrinfo for AF_INET alone, gethostbyname).
const GET_HOST_BY_NAME: i32 = 4;
/// `GETHOSTBYNAMEv6`: IPv6 addresses (gethostbyname2 for AF_INET6).
const GET_HOST_BY_NAME_V6: i32 = 5;
/// `GETAI`: every address (getaddrinfo).
const GET_ADDRESS_INFO: i32 = 14;
/// The longest key nscd takes (`MAXKEYLEN`).
const LONGEST_KEY: usize = 1024;
/// `request_header`: version, type, key length.
const REQUEST_HEADER: usize = 12;
/// `HOST_NOT_FOUND` of `<netdb.h>`.
const HOST_NOT_FOUND: i32 = 1;
/// `ioctl(SECCOMP_IOCTL_NOTIF_ADDFD)`: `_IOW('!', 3, struct seccomp_notif_addfd)`.
const SECCOMP_IOCTL_NOTIF_ADDFD: libc::Ioctl = 0x4018_2103;
/// Install at the number given (`newfd`), replacing what is there.
const SECCOMP_ADDFD_FLAG_SETFD: u32 = 1;
/// Lookups answered at once, at most (a script holding more gets EAGAIN).
pub(crate) const MOST_LOOKUPS: usize = 16;

/// Whether a `struct sockaddr_un` (a copy of the caller's) names nscd's socket.
pub(crate) fn is_nscd(address: &[u8]) -> bool {
    let path = address.get(2..).unwrap_or_default();
    let path = path.split(|&byte| byte == 0).next().unwrap_or_default();
    NSCD_SOCKETS.contains(&path)
}

/// A name lookup the supervisor answers: its end of the pair, and the request read so far.
pub(crate) struct Lookup {
    end: OwnedFd,
    request: Vec<u8>,
}

/// Puts one end of a new socket pair at descriptor `fd` of the caller of notification `id`,
/// and returns the other end's lookup.
pub(crate) fn attach(listener: RawFd, id: u64, fd: u64) -> io::Result<Lookup> {
    let mut ends: [libc::c_int; 2] = [-1, -1];
    // SAFETY: socketpair writes two descriptors into the array, which is ours.
    sys::check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
            ends.as_mut_ptr(),
        )
    })?;
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    let request = libc::seccomp_notif_addfd {
        id,
        flags: SECCOMP_ADDFD_FLAG_SETFD,
        srcfd: theirs.as_raw_fd() as u32,
        newfd: c_int(fd) as u32,
        newfd_flags: libc::O_CLOEXEC as u32,
    };
    // SAFETY: the listener is a seccomp notification descriptor; the request is a complete
    // `struct seccomp_notif_addfd` that lives for the call.
    sys::check(unsafe { sys::ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, std::ptr::addr_of!(request) as usize) })?;
    Ok(Lookup { end: ours, request: Vec::new() })
}

/// Where a lookup stands after its end was readable.
pub(crate) enum Step {
    /// The request is not complete yet.
    Waiting,
    /// Answered (or closed): the lookup is over. `Some(name)`: a name that is not granted.
    Over(Option<String>),
}

impl Lookup {
    pub(crate) fn raw(&self) -> RawFd {
        self.end.as_raw_fd()
    }

    /// Reads what the script sent; once the request is whole, answers it. With `learned`
    /// (`--learn`), a name that is not granted is answered with its placeholder addresses.
    pub(crate) fn on_readable(&mut self, names: &[(String, Vec<IpAddr>)], learned: Option<&mut Learned>) -> Step {
        let mut buffer = [0u8; REQUEST_HEADER + LONGEST_KEY];
        let room = buffer.len() - self.request.len();
        // SAFETY: reads at most `room` bytes into our buffer.
        let read = unsafe { libc::read(self.end.as_raw_fd(), buffer.as_mut_ptr().cast(), room) };
        if read < 0 {
            return match sys::last_error().raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Step::Waiting,
                _ => Step::Over(None),
            };
        }
        if read == 0 {
            return Step::Over(None);
        }
        self.request.extend_from_slice(&buffer[..read as usize]);
        match parse(&self.request) {
            Request::Incomplete => Step::Waiting,
            Request::Other => Step::Over(None),
            Request::Lookup { kind, name } => {
                let name = String::from_utf8_lossy(name).into_owned();
                let placeholder: Option<Vec<IpAddr>>;
                let addresses = match (find(names, &name), learned) {
                    (None, Some(learned)) => {
                        // getaddrinfo gets the IPv4 placeholder alone: one refused connect per try.
                        placeholder = learned.placeholder(&name).map(|(v4, v6)| match kind {
                            GET_ADDRESS_INFO => vec![v4],
                            _ => vec![v4, v6],
                        });
                        placeholder.as_deref()
                    }
                    (found, _) => found,
                };
                let reply = match kind {
                    GET_ADDRESS_INFO => address_info(&name, addresses),
                    _ => host_entry(&name, addresses, kind == GET_HOST_BY_NAME_V6),
                };
                let _ = sys::write_all(self.end.as_raw_fd(), &reply);
                Step::Over(addresses.is_none().then_some(name))
            }
        }
    }
}

enum Request<'a> {
    Incomplete,
    /// A request of `kind` for this name (without its NUL).
    Lookup {
        kind: i32,
        name: &'a [u8],
    },
    /// Anything else, or nothing nscd would take.
    Other,
}

fn parse(request: &[u8]) -> Request<'_> {
    let Some(header) = request.get(..REQUEST_HEADER) else { return Request::Incomplete };
    let field = |at: usize| i32::from_ne_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let (version, kind, length) = (field(0), field(4), field(8));
    let Ok(length) = usize::try_from(length) else { return Request::Other };
    let known = matches!(kind, GET_HOST_BY_NAME | GET_HOST_BY_NAME_V6 | GET_ADDRESS_INFO);
    if version != NSCD_VERSION || !known || length == 0 || length > LONGEST_KEY {
        return Request::Other;
    }
    match request.get(REQUEST_HEADER..REQUEST_HEADER + length) {
        None => Request::Incomplete,
        Some([name @ .., 0]) if !name.contains(&0) => Request::Lookup { kind, name },
        Some(_) => Request::Other,
    }
}

/// The addresses of `name` among the granted names (letters in any case, one final dot).
fn find<'a>(names: &'a [(String, Vec<IpAddr>)], name: &str) -> Option<&'a [IpAddr]> {
    let wanted = name.strip_suffix('.').unwrap_or(name);
    names.iter().find(|(granted, _)| granted.eq_ignore_ascii_case(wanted)).map(|(_, addresses)| addresses.as_slice())
}

fn int(value: i32) -> [u8; 4] {
    value.to_ne_bytes()
}

fn length(bytes: usize) -> i32 {
    i32::try_from(bytes).unwrap_or(i32::MAX)
}

/// `hst_response_header` and its data: the name, then the addresses of one family (IPv6 for
/// `GETHOSTBYNAMEv6`), no aliases; or "not found" when the name has none.
fn host_entry(name: &str, addresses: Option<&[IpAddr]>, six: bool) -> Vec<u8> {
    let packed: Vec<u8> = addresses
        .unwrap_or_default()
        .iter()
        .filter_map(|address| match (address, six) {
            (IpAddr::V4(v4), false) => Some(v4.octets().to_vec()),
            (IpAddr::V6(v6), true) => Some(v6.octets().to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    let size = if six { 16 } else { 4 };
    if packed.is_empty() {
        return [int(NSCD_VERSION), int(0), int(0), int(0), int(0), int(0), int(0), int(HOST_NOT_FOUND)].concat();
    }
    let family = if six { libc::AF_INET6 } else { libc::AF_INET };
    let canonical: Vec<u8> = name.bytes().chain([0]).collect();
    let header = [
        int(NSCD_VERSION),
        int(1),
        int(length(canonical.len())),
        int(0),
        int(family),
        int(size),
        int(length(packed.len() / size as usize)),
        int(0),
    ]
    .concat();
    [header, canonical, packed].concat()
}

/// `ai_response_header` and its data: the addresses (4 or 16 bytes each), their families (one
/// byte each) and the canonical name; or "not found".
fn address_info(name: &str, addresses: Option<&[IpAddr]>) -> Vec<u8> {
    let Some(addresses) = addresses else {
        return [int(NSCD_VERSION), int(0), int(0), int(0), int(0), int(HOST_NOT_FOUND)].concat();
    };
    let mut packed = Vec::new();
    let mut families = Vec::new();
    for address in addresses {
        match address {
            IpAddr::V4(v4) => {
                packed.extend_from_slice(&v4.octets());
                families.push(libc::AF_INET as u8);
            }
            IpAddr::V6(v6) => {
                packed.extend_from_slice(&v6.octets());
                families.push(libc::AF_INET6 as u8);
            }
        }
    }
    let canonical: Vec<u8> = name.bytes().chain([0]).collect();
    let header = [
        int(NSCD_VERSION),
        int(1),
        int(length(families.len())),
        int(length(packed.len())),
        int(length(canonical.len())),
        int(0),
    ]
    .concat();
    [header, packed, families, canonical].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(kind: i32, key: &[u8]) -> Vec<u8> {
        let length = i32::try_from(key.len()).unwrap();
        [&NSCD_VERSION.to_ne_bytes()[..], &kind.to_ne_bytes(), &length.to_ne_bytes(), key].concat()
    }

    #[test]
    fn reads_address_requests_whole() {
        let whole = request(GET_ADDRESS_INFO, b"api.example\0");
        assert!(matches!(parse(&whole[..5]), Request::Incomplete));
        assert!(matches!(parse(&whole[..whole.len() - 1]), Request::Incomplete));
        assert!(matches!(parse(&whole), Request::Lookup { kind: GET_ADDRESS_INFO, name: b"api.example" }));
        assert!(matches!(parse(&request(13, b"hosts\0")), Request::Other));
        assert!(matches!(parse(&request(GET_ADDRESS_INFO, b"no-nul")), Request::Other));
        assert!(matches!(parse(&request(GET_ADDRESS_INFO, b"a\0b\0")), Request::Other));
    }

    #[test]
    fn answers_granted_names_only() {
        let names =
            vec![("api.example".to_string(), vec!["192.0.2.7".parse().unwrap(), "2001:db8::1".parse().unwrap()])];
        let found = find(&names, "API.example.").unwrap();
        let reply = address_info("api.example", Some(found));
        assert_eq!(reply.len(), 24 + 4 + 16 + 2 + 12);
        assert_eq!(&reply[4..8], &1i32.to_ne_bytes());
        assert_eq!(&reply[24..28], &[192, 0, 2, 7]);
        assert!(find(&names, "other.example").is_none());
        assert_eq!(&address_info("other.example", None)[4..8], &0i32.to_ne_bytes());
        let entry = host_entry("api.example", Some(found), false);
        assert_eq!(entry.len(), 32 + 12 + 4);
        assert_eq!(&entry[44..48], &[192, 0, 2, 7]);
        assert_eq!(host_entry("api.example", Some(found), true).len(), 32 + 12 + 16);
        assert!(is_nscd(b"\x01\x00/var/run/nscd/socket\0\0\0"));
        assert!(!is_nscd(b"\x01\x00/var/run/nscd/socket2\0"));
    }
}
