//! Route netlink (rtnetlink) over a blocking socket, in any network
//! namespace.
//!
//! A [`Netlink`] is a `NETLINK_ROUTE` socket. [`Netlink::open_in`] creates
//! it on a short-lived thread that has joined the target namespace (see
//! [`crate::netns::run_in`]); the socket stays bound to that namespace, so
//! every request below acts there, whichever thread sends it. Each request
//! asks for an acknowledgement and waits for it: errors come back as the
//! kernel's errno in [`Error::Netlink`].
//!
//! The operations are split by object: [`link`] (veth pairs, bridges,
//! controller, namespace moves, name, MTU, MAC, up/down) and [`addr`]
//! (IPv4/IPv6 addresses and routes).

pub mod addr;
pub mod link;

use std::io;
use std::os::fd::BorrowedFd;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::error::{Error, Result};

pub use addr::{Address, Route};
pub use link::{Link, LinkKind, VethPair};

/// A blocking route-netlink socket bound to one network namespace.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(Error::netlink("open socket", "NETLINK_ROUTE"))?;
        socket
            .bind_auto()
            .map_err(Error::netlink("bind socket", "NETLINK_ROUTE"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(Error::netlink("connect socket", "NETLINK_ROUTE"))?;
        // Errors name the attribute the kernel disliked when it can.
        let _ = socket.set_ext_ack(true);
        Ok(Netlink { socket, seq: 0 })
    }

    /// A socket in the network namespace `netns`, created from a
    /// short-lived thread; the calling thread stays where it is.
    pub fn open_in(netns: BorrowedFd<'_>) -> Result<Netlink> {
        crate::netns::run_in(netns, Netlink::open)
    }

    /// The namespace's cookie (`SO_NETNS_COOKIE`): a number the kernel
    /// never gives another network namespace during this boot, unlike the
    /// namespace file's inode number, which is reused.
    pub fn netns_cookie(&self) -> Result<u64> {
        // The generic value; the option exists since Linux 5.14.
        const SO_NETNS_COOKIE: libc::c_int = 71;
        let mut cookie: u64 = 0;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        // SAFETY: the socket fd is open for the call; cookie and len are
        // valid for writes of the size len says.
        let rc = unsafe {
            libc::getsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&self.socket),
                libc::SOL_SOCKET,
                SO_NETNS_COOKIE,
                (&raw mut cookie).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(Error::Netlink {
                op: "get SO_NETNS_COOKIE",
                target: "NETLINK_ROUTE".into(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(cookie)
    }

    /// Send `msg` with `flags` (plus `NLM_F_REQUEST | NLM_F_ACK`) and
    /// collect the answers until the acknowledgement or the end of a dump.
    fn request(
        &mut self,
        op: &'static str,
        target: &dyn std::fmt::Display,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(Error::netlink(op, target))?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(Error::netlink(op, target))?;
            let mut offset = 0;
            while offset < data.len() {
                let bytes = &data[offset..];
                let msg =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map_err(|e| {
                        Error::NetlinkDecode {
                            op,
                            reason: e.to_string(),
                        }
                    })?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(Error::NetlinkDecode {
                        op,
                        reason: "message of length 0".into(),
                    });
                }
                offset += len;
                if msg.header.sequence_number != seq {
                    continue; // a stale answer to an earlier request
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        if e.code.is_some() {
                            return Err(Error::Netlink {
                                op,
                                target: target.to_string(),
                                source: io::Error::from_raw_os_error(-e.raw_code()),
                            });
                        }
                        // An ACK: for a dump it follows the Done message.
                        if !dump {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }

    fn dump(
        &mut self,
        op: &'static str,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.request(op, &"(dump)", msg, NLM_F_DUMP)
    }
}
