//! Links, addresses and routes through rtnetlink, in-process: an attach
//! used to run a dozen `ip` and `nsenter` processes, each costing a fork,
//! an exec and the dynamic loader.
//!
//! A netlink socket talks to the network namespace it was opened in, so
//! `Netlink::open_in` opens it from a short-lived thread that has entered
//! the namespace; the socket then serves any thread.
//!
//! Requests are acknowledged one at a time (`NLM_F_ACK`): each error is
//! the kernel's own errno, reported with what was asked.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::{Error, Result};

use rustix::io::Errno;

/// A route netlink socket in one network namespace.
pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

fn failed(what: &str, e: impl Into<std::io::Error>) -> Error {
    Error::Netlink {
        what: what.to_string(),
        source: e.into(),
    }
}

/// True if the kernel answered with `errno`.
pub(crate) fn is_errno(e: &Error, errno: Errno) -> bool {
    matches!(e, Error::Netlink { source, .. } if source.raw_os_error() == Some(errno.raw_os_error()))
}

/// A decode error of a kernel reply, as an I/O error.
fn malformed(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl Netlink {
    /// A socket in this thread's network namespace.
    pub fn open() -> Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| failed("opening a socket", e))?;
        socket
            .bind_auto()
            .map_err(|e| failed("binding the socket", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| failed("connecting to the kernel", e))?;
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// A socket in the network namespace at `ns` (None: this thread's).
    pub fn open_in(ns: Option<&Path>) -> Result<Netlink> {
        crate::netns::within(ns, Netlink::open)
    }

    /// Sends one request and reads until its acknowledgement (or, for a
    /// dump, its end), returning the messages the kernel sent back.
    fn request(
        &mut self,
        what: &str,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(|e| failed(what, e))?;
        let mut replies = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full().map_err(|e| failed(what, e))?;
            let mut offset = 0;
            while offset < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| failed(what, malformed(e)))?;
                let length = reply.header.length as usize;
                if reply.header.sequence_number != self.sequence {
                    offset += length.max(1);
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(_) => Err(failed(what, e.to_io())),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }

    /// The index of the link called `name`, if there is one.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            &format!("finding link {name}"),
            RouteNetlinkMessage::GetLink(message),
            0,
        ) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(e) if is_errno(&e, Errno::NODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link's name.
    pub fn link_names(&mut self) -> Result<Vec<String>> {
        let replies = self.request(
            "listing links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                }),
                _ => None,
            })
            .collect())
    }

    fn new_link(&mut self, what: &str, message: LinkMessage) -> Result<()> {
        self.request(
            what,
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// `ip link add NAME type bridge`.
    pub fn add_bridge(&mut self, name: &str) -> Result<()> {
        let mut message = LinkMessage::default();
        message.attributes = vec![
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
        ];
        self.new_link(&format!("adding bridge {name}"), message)
    }

    /// `ip link add NAME type veth peer name PEER netns NS`: the peer is
    /// made directly in the namespace `peer_ns` refers to.
    pub fn add_veth(&mut self, name: &str, peer: &str, peer_ns: BorrowedFd<'_>) -> Result<()> {
        let mut peer_message = LinkMessage::default();
        peer_message.attributes = vec![
            LinkAttribute::IfName(peer.to_string()),
            LinkAttribute::NetNsFd(peer_ns.as_raw_fd()),
        ];
        let mut message = LinkMessage::default();
        message.attributes = vec![
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
            ]),
        ];
        self.new_link(&format!("adding veth pair {name}/{peer}"), message)
    }

    /// `ip link set dev INDEX [master M] up`.
    pub fn set_up(&mut self, index: u32, master: Option<u32>) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        if let Some(m) = master {
            message.attributes.push(LinkAttribute::Controller(m));
        }
        self.request(
            &format!("setting link {index} up"),
            RouteNetlinkMessage::SetLink(message),
            0,
        )
        .map(drop)
    }

    /// `ip link del dev INDEX`.
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        self.request(
            &format!("deleting link {index}"),
            RouteNetlinkMessage::DelLink(message),
            0,
        )
        .map(drop)
    }

    /// `ip addr add IP/PREFIX dev INDEX`.
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix;
        message.header.index = index;
        message.attributes = vec![
            AddressAttribute::Local(ip.into()),
            AddressAttribute::Address(ip.into()),
        ];
        self.request(
            &format!("adding address {ip}/{prefix}"),
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// `ip route add default via GATEWAY`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<()> {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Boot;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.request(
            &format!("adding the default route via {gateway}"),
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Brings a link up by name, failing if it is not there.
    pub fn set_up_by_name(&mut self, name: &str, master: Option<u32>) -> Result<u32> {
        let index = self.require(name)?;
        self.set_up(index, master)?;
        Ok(index)
    }

    /// The index of a link that must exist.
    pub fn require(&mut self, name: &str) -> Result<u32> {
        self.link_index(name)?.ok_or_else(|| {
            failed(
                &format!("finding link {name}"),
                std::io::Error::from(Errno::NODEV),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Message building only: nothing is sent (a unit test may not touch
    /// the host's network).
    #[test]
    fn a_veth_request_carries_its_peer_and_namespace() {
        let mut peer = LinkMessage::default();
        peer.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::NetNsFd(7),
        ];
        let mut message = LinkMessage::default();
        message.attributes = vec![
            LinkAttribute::IfName("vetest".into()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ];
        let mut packet = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::from(RouteNetlinkMessage::NewLink(message.clone())),
        );
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        let back = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
        assert!(matches!(
            back.payload,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) if m.attributes.len() == 2
        ));
    }
}
