//! Looks up one IPv4 TCP socket of this machine by its four-tuple through
//! netlink `sock_diag`: an exact lookup, one hash probe in the kernel, where
//! reading `/proc/net/tcp` prints every socket of the machine (TIME_WAIT
//! ones of earlier runs included: milliseconds of kernel time with a few
//! thousand). The stalled-subscriber watch ([`crate::stalled`]) samples with
//! it five times a second without disturbing the load generator.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What the kernel says about one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockInfo {
    /// TCP state (`1` established, as in `/proc/net/tcp`).
    pub state: u8,
    /// Bytes sent but not yet acknowledged, or not yet sent.
    pub send_q: u32,
    /// Bytes received but not yet read.
    pub recv_q: u32,
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const INET_DIAG_NOCOOKIE: u32 = !0;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct NlMsgHdr {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct InetDiagSockId {
    sport: [u8; 2],
    dport: [u8; 2],
    src: [[u8; 4]; 4],
    dst: [[u8; 4]; 4],
    interface: u32,
    cookie: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct InetDiagReqV2 {
    family: u8,
    protocol: u8,
    ext: u8,
    pad: u8,
    states: u32,
    id: InetDiagSockId,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Request {
    header: NlMsgHdr,
    req: InetDiagReqV2,
}

/// The reply's `inet_diag_msg`, up to the queues.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct InetDiagMsg {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: InetDiagSockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
}

/// A netlink `sock_diag` socket.
pub struct SockDiag {
    fd: OwnedFd,
    seq: u32,
}

impl SockDiag {
    pub fn new() -> io::Result<SockDiag> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SockDiag { fd, seq: 0 })
    }

    /// The TCP socket whose local address is `local` and peer `remote`;
    /// `None` if there is none (closed and gone).
    pub fn lookup(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<Option<SockInfo>> {
        let (SocketAddr::V4(local), SocketAddr::V4(remote)) = (local, remote) else {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "IPv4 only"));
        };
        self.seq = self.seq.wrapping_add(1);
        let request = request(local, remote, self.seq);
        // SAFETY: `request` is a plain repr(C) value sent as bytes.
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                (&request as *const Request).cast(),
                std::mem::size_of::<Request>(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 512];
        // SAFETY: receives into a buffer we own, at most its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        parse_reply(&buf[..n as usize], remote)
    }
}

fn request(local: SocketAddrV4, remote: SocketAddrV4, seq: u32) -> Request {
    let mut id = InetDiagSockId {
        sport: local.port().to_be_bytes(),
        dport: remote.port().to_be_bytes(),
        cookie: [INET_DIAG_NOCOOKIE; 2],
        ..InetDiagSockId::default()
    };
    id.src[0] = local.ip().octets();
    id.dst[0] = remote.ip().octets();
    Request {
        header: NlMsgHdr {
            len: std::mem::size_of::<Request>() as u32,
            kind: SOCK_DIAG_BY_FAMILY,
            flags: libc::NLM_F_REQUEST as u16,
            seq,
            pid: 0,
        },
        req: InetDiagReqV2 {
            family: libc::AF_INET as u8,
            protocol: libc::IPPROTO_TCP as u8,
            states: !0,
            id,
            ..InetDiagReqV2::default()
        },
    }
}

/// One reply: an `inet_diag_msg`, or an error (`ENOENT`: no such socket).
/// The kernel's lookup falls back to a listening socket on the local
/// address: one not connected to `remote` is not the socket asked for.
fn parse_reply(reply: &[u8], remote: SocketAddrV4) -> io::Result<Option<SockInfo>> {
    let header: NlMsgHdr = read_struct(reply)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short netlink reply"))?;
    let body = &reply[std::mem::size_of::<NlMsgHdr>()..];
    if header.kind == NLMSG_ERROR {
        let errno: i32 = read_struct(body)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short netlink error"))?;
        return match -errno {
            libc::ENOENT => Ok(None),
            e => Err(io::Error::from_raw_os_error(e)),
        };
    }
    if header.kind != SOCK_DIAG_BY_FAMILY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected netlink message",
        ));
    }
    let msg: InetDiagMsg = read_struct(body)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short inet_diag_msg"))?;
    if msg.id.dport != remote.port().to_be_bytes() || msg.id.dst[0] != remote.ip().octets() {
        return Ok(None);
    }
    Ok(Some(SockInfo {
        state: msg.state,
        send_q: msg.wqueue,
        recv_q: msg.rqueue,
    }))
}

/// A `T` read from the start of `bytes` (any alignment), if it is long
/// enough. Only for the plain-integer structs of this module.
fn read_struct<T: Copy + Default>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked; T is plain integers, any bit pattern is valid.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<InetDiagSockId>(), 48);
        assert_eq!(std::mem::size_of::<InetDiagReqV2>(), 56);
        assert_eq!(std::mem::size_of::<Request>(), 72);
        assert_eq!(std::mem::size_of::<InetDiagMsg>(), 64);
    }

    #[test]
    fn finds_a_connection_its_queues_and_its_end() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (c, s) = (client.local_addr().unwrap(), server.local_addr().unwrap());
        let mut diag = SockDiag::new().unwrap();
        let at_server = diag.lookup(s, c).unwrap().expect("server side");
        assert_eq!(at_server.state, 1, "established");
        client.write_all(&[7; 1000]).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let info = diag.lookup(s, c).unwrap().expect("server side");
            if info.recv_q == 1000 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{info:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // An unrelated four-tuple is not there.
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(diag.lookup(s, other).unwrap(), None);
        // The server closes: its side leaves ESTABLISHED.
        drop(server);
        let mut buf = [0; 16];
        assert_eq!(client.read(&mut buf).unwrap_or(0), 0);
        let closed = diag.lookup(s, c).unwrap();
        assert!(closed.is_none_or(|i| i.state != 1), "{closed:?}");
    }
}
