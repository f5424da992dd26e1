//! `--allow-connect HOST:PORT`: a TCP endpoint the script may connect to. HOST is an address
//! (`192.0.2.7`, `[2001:db8::1]`) or a name, which the host resolves once, at start, before the
//! sandbox (the script's own lookups stay refused); every address it resolves to is granted
//! with that port, and nothing else.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::FromRawFd;

use h_sandbox::unmapped;

/// An endpoint as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(out, "[{}]:{}", self.host, self.port)
        } else {
            write!(out, "{}:{}", self.host, self.port)
        }
    }
}

/// `HOST:PORT` or `[IPV6]:PORT`, PORT from 1 to 65535.
pub fn parse(text: &str) -> Result<Endpoint, String> {
    let wrong = |why: &str| format!("--allow-connect {text}: {why} (HOST:PORT, or [IPV6]:PORT)");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(|| wrong("no port after the bracketed address"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(wrong("not an IPv6 address in brackets"));
        }
        (host, port)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or_else(|| wrong("no port"))?;
        if host.contains(':') {
            return Err(wrong("an IPv6 address goes in brackets"));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(wrong("no host"));
    }
    let port = match port.parse::<u16>() {
        Ok(port) if port != 0 => port,
        _ => return Err(wrong("the port is not a number from 1 to 65535")),
    };
    Ok(Endpoint { host: host.to_string(), port })
}

/// The addresses `endpoint` grants: its own, or what its name resolves to now.
pub fn resolve(endpoint: &Endpoint) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = endpoint.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(unmapped(ip), endpoint.port)]);
    }
    let resolved = in_child(&endpoint.host, endpoint.port)
        .map_err(|error| format!("--allow-connect {endpoint}: cannot resolve {}: {error}", endpoint.host))?;
    let mut addresses: Vec<SocketAddr> =
        resolved.into_iter().map(|address| SocketAddr::new(unmapped(address.ip()), address.port())).collect();
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(format!("--allow-connect {endpoint}: {} has no address", endpoint.host));
    }
    Ok(addresses)
}

/// The names among `endpoints` (not addresses), each with every address it was resolved to
/// (`resolved`, in the same order), a name granted with several ports once: what the
/// supervisor answers lookups of.
pub fn names(endpoints: &[Endpoint], resolved: &[Vec<SocketAddr>]) -> Vec<(String, Vec<IpAddr>)> {
    let mut names: Vec<(String, Vec<IpAddr>)> = Vec::new();
    for (endpoint, addresses) in endpoints.iter().zip(resolved) {
        if endpoint.host.parse::<IpAddr>().is_ok() {
            continue;
        }
        let ips = addresses.iter().map(SocketAddr::ip);
        match names.iter_mut().find(|(name, _)| name.eq_ignore_ascii_case(&endpoint.host)) {
            Some((_, known)) => known.extend(ips),
            None => names.push((endpoint.host.clone(), ips.collect())),
        }
    }
    for (_, ips) in &mut names {
        ips.sort();
        ips.dedup();
    }
    names
}

/// `getaddrinfo` in a child process: glibc remembers in the process that nscd is not running
/// (for the next hundred lookups), and the script of an embedding host (hlua, hpython) runs in
/// this process, where the supervisor answers nscd's socket for the granted names.
fn in_child(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let mut ends: [libc::c_int; 2] = [-1, -1];
    // SAFETY: pipe2 writes two descriptors into the array, which is ours.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    let (mut reader, writer) = unsafe { (std::fs::File::from_raw_fd(ends[0]), std::fs::File::from_raw_fd(ends[1])) };
    // SAFETY: the host is single-threaded here (before the sandbox), so the child may run
    // arbitrary code; it only resolves, writes to the pipe and exits without unwinding.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    if child == 0 {
        drop(reader);
        let mut writer = writer;
        let text = match (host, port).to_socket_addrs() {
            Ok(addresses) => addresses.map(|address| format!("{address}\n")).collect::<String>(),
            Err(error) => format!("!{error}\n"),
        };
        let status = i32::from(writer.write_all(text.as_bytes()).is_err());
        // SAFETY: _exit ends the child at once, running nothing of the parent's.
        unsafe { libc::_exit(status) };
    }
    drop(writer);
    let mut text = String::new();
    let read = reader.read_to_string(&mut text);
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is ours.
    unsafe { libc::waitpid(child, &mut status, 0) };
    read.map_err(|error| error.to_string())?;
    if let Some(error) = text.strip_prefix('!') {
        return Err(error.trim_end().to_string());
    }
    text.lines().map(|line| line.parse().map_err(|_| format!("unreadable address {line:?}"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_addresses_and_ports() {
        assert_eq!(parse("example.org:443"), Ok(Endpoint { host: "example.org".into(), port: 443 }));
        assert_eq!(parse("127.0.0.1:8080"), Ok(Endpoint { host: "127.0.0.1".into(), port: 8080 }));
        assert_eq!(parse("[::1]:80"), Ok(Endpoint { host: "::1".into(), port: 80 }));
        assert_eq!(parse("[::1]:80").map(|endpoint| endpoint.to_string()), Ok("[::1]:80".to_string()));
        for wrong in ["example.org", "example.org:0", "example.org:65536", ":80", "::1:80", "[nope]:80", "[::1]80"] {
            assert!(parse(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn addresses_resolve_to_themselves() {
        let endpoint = parse("[::ffff:127.0.0.1]:80").unwrap();
        assert_eq!(resolve(&endpoint), Ok(vec!["127.0.0.1:80".parse().unwrap()]));
    }
}
