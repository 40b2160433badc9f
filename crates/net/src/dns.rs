//! A network's DNS responder: one small process per network, listening on
//! the network's gateway address, port 53 (UDP). It answers the names of
//! the containers on that network (name, hostname, short id, aliases) from
//! the network's lease file, and forwards other names to the asking
//! container's `--dns` servers or the host's resolvers.
//!
//! It is started on demand by the first container to attach, and it exits
//! by itself once the network has no lease left (`rm` of the last
//! container also stops it at once). No global daemon is involved.
//!
//! Rules that keep it from becoming a way around the network's limits:
//! - only containers holding a lease on the network get answers; anyone
//!   else is refused;
//! - names of one label that are not on the network get NXDOMAIN here and
//!   are never forwarded, so a container's name on another network does
//!   not leak through the host's resolvers;
//! - a container that may not reach the outside (egress deny, an internal
//!   network) gets no forwarding: DNS is not a tunnel out.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use simple_dns::rdata::{RData, A};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, OPCODE, QTYPE, RCODE, TYPE};

use crate::ipam::{Holder, Leases};
use crate::{IoContext, Result};

/// Seconds a local answer may be cached: containers come and go.
const LOCAL_TTL: u32 = 5;
/// How long a forwarded question waits for its upstream answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Forwarded questions in flight at once; more are dropped (the client
/// retries), so a flood cannot grow the table without bound.
const MAX_PENDING: usize = 1024;
/// A UDP DNS message is at most this big (EDNS0's usual limit).
const MAX_MESSAGE: usize = 4096;

/// What to do with one question.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Relay the question unchanged to one of these resolvers.
    Forward(Vec<SocketAddrV4>),
    /// Not a question (or not even a DNS message): ignore it.
    Drop,
}

/// Decides how to answer `query` from `src`, given the network's leases
/// and the host's resolvers. Pure, so it is tested and fuzzed on its own.
pub fn decide(query: &[u8], src: Ipv4Addr, holders: &[Holder], host: &[SocketAddrV4]) -> Decision {
    let Ok(packet) = Packet::parse(query) else {
        return Decision::Drop;
    };
    if packet.has_flags(PacketFlag::RESPONSE) {
        return Decision::Drop;
    }
    let Some(asker) = holders.iter().find(|h| h.ip == src) else {
        return reply(&packet, RCODE::Refused, Vec::new());
    };
    if packet.opcode() != OPCODE::StandardQuery || packet.questions.len() != 1 {
        return reply(&packet, RCODE::NotImplemented, Vec::new());
    }
    let question = &packet.questions[0];
    let name = question
        .qname
        .to_string()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let found: Vec<Ipv4Addr> = holders
        .iter()
        .filter(|h| {
            h.endpoint
                .names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&name))
        })
        .map(|h| h.ip)
        .collect();
    if !found.is_empty() {
        // The name is ours: A records, and an empty answer to anything
        // else (AAAA above all), so resolvers do not go on asking.
        let wants_a = matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY);
        let answers = if wants_a {
            found
                .into_iter()
                .map(|ip| {
                    ResourceRecord::new(
                        question.qname.clone(),
                        CLASS::IN,
                        LOCAL_TTL,
                        RData::A(A::from(ip)),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        return reply(&packet, RCODE::NoError, answers);
    }
    if !name.contains('.') {
        return reply(&packet, RCODE::NameError, Vec::new());
    }
    if !asker.endpoint.forward {
        return reply(&packet, RCODE::Refused, Vec::new());
    }
    let upstreams: Vec<SocketAddrV4> = if asker.endpoint.dns.is_empty() {
        host.to_vec()
    } else {
        asker
            .endpoint
            .dns
            .iter()
            .map(|ip| SocketAddrV4::new(*ip, 53))
            .collect()
    };
    if upstreams.is_empty() {
        return reply(&packet, RCODE::ServerFailure, Vec::new());
    }
    Decision::Forward(upstreams)
}

fn reply(query: &Packet, code: RCODE, answers: Vec<ResourceRecord>) -> Decision {
    let mut out = Packet::new_reply(query.id());
    let mut flags = PacketFlag::RECURSION_AVAILABLE;
    if code == RCODE::NoError || code == RCODE::NameError {
        flags |= PacketFlag::AUTHORITATIVE_ANSWER;
    }
    if query.has_flags(PacketFlag::RECURSION_DESIRED) {
        flags |= PacketFlag::RECURSION_DESIRED;
    }
    out.set_flags(flags);
    *out.rcode_mut() = code;
    out.questions = query.questions.clone();
    out.answers = answers;
    match out.build_bytes_vec() {
        Ok(bytes) => Decision::Reply(bytes),
        Err(_) => Decision::Drop,
    }
}

/// The host's IPv4 resolvers, from /etc/resolv.conf.
pub fn host_resolvers() -> Vec<SocketAddrV4> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    resolvers_in(&text)
}

fn resolvers_in(text: &str) -> Vec<SocketAddrV4> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<Ipv4Addr>().ok())
        .map(|ip| SocketAddrV4::new(ip, 53))
        .collect()
}

/// The container's /etc/resolv.conf on a network: the responder, plus the
/// host's `search` and `options` lines.
pub fn container_resolv_conf(gateway: Ipv4Addr) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = format!("nameserver {gateway}\n");
    for line in host.lines() {
        let l = line.trim();
        if l.starts_with("search ") || l.starts_with("options ") {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The sockets of a responder, bound before it serves: `upstream` in the
/// namespace the process started in (the host's, where the host's
/// resolvers are reachable), `listen` on the gateway inside `netns` (the
/// rootless hub) or, without one, in the same namespace.
pub struct Sockets {
    listen: UdpSocket,
    upstream: UdpSocket,
}

impl Sockets {
    pub fn bind(gateway: Ipv4Addr, netns: Option<&Path>) -> Result<Sockets> {
        let upstream = UdpSocket::bind("0.0.0.0:0").ctx("binding", "0.0.0.0:0")?;
        if let Some(path) = netns {
            crate::netns::enter(path)?;
        }
        let addr = SocketAddr::from((gateway, 53));
        // A responder that is on its way out may hold the port a moment
        // longer (it decided to exit just before a new container came).
        let mut tries = 0;
        let listen = loop {
            match UdpSocket::bind(addr) {
                Ok(s) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 40 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e).ctx("binding", addr.to_string()),
            }
        };
        Ok(Sockets { listen, upstream })
    }
}

/// A forwarded question waiting for its answer.
struct Pending {
    client: SocketAddr,
    id: u16,
    upstream: SocketAddrV4,
    sent: Instant,
}

/// A lease file's holders, read again whenever the file changes.
#[derive(Default)]
struct Cached {
    seen: Option<SystemTime>,
    holders: Vec<Holder>,
}

/// The holders of every lease file the responder has read, by path.
#[derive(Default)]
struct Holders(HashMap<std::path::PathBuf, Cached>);

impl Holders {
    fn of(&mut self, leases: &Leases) -> &[Holder] {
        let entry = self.0.entry(leases.path().to_path_buf()).or_default();
        let mtime = std::fs::metadata(leases.path())
            .and_then(|m| m.modified())
            .ok();
        if mtime != entry.seen || mtime.is_none() {
            if let Ok(h) = leases.holders() {
                entry.holders = h;
                entry.seen = mtime;
            }
        }
        &entry.holders
    }

    /// Who the asker at `src` may look up: this network's holders, then
    /// those of the other networks the asker is on too (docker resolves a
    /// container's names on all of its networks). Names on networks the
    /// asker is not on stay out.
    fn visible(&mut self, src: Ipv4Addr, own: &Leases, others: &[Leases]) -> Vec<Holder> {
        let mut all = self.of(own).to_vec();
        let Some(asker) = all.iter().find(|h| h.ip == src).map(|h| h.owner.clone()) else {
            return all;
        };
        for leases in others {
            let theirs = self.of(leases);
            if theirs.iter().any(|h| h.owner == asker) {
                let more: Vec<Holder> = theirs.to_vec();
                all.extend(more);
            }
        }
        all
    }
}

/// Serves until `done` says so (it is asked about once a second).
/// `others` lists the lease files of the store's other networks.
pub fn serve(
    sockets: Sockets,
    leases: Leases,
    others: impl Fn() -> Vec<Leases>,
    mut done: impl FnMut() -> bool,
) -> Result<()> {
    let Sockets { listen, upstream } = sockets;
    let listen = Arc::new(listen);
    let pending: Arc<Mutex<HashMap<u16, Pending>>> = Arc::default();
    {
        let (listen, pending) = (listen.clone(), pending.clone());
        let upstream = upstream.try_clone().ctx("cloning", "the upstream socket")?;
        std::thread::spawn(move || relay_answers(&upstream, &listen, &pending));
    }
    listen
        .set_read_timeout(Some(Duration::from_secs(1)))
        .ctx("configuring", "the DNS socket")?;
    let host = host_resolvers();
    let mut holders = Holders::default();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (n, client) = match listen.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if done() {
                    return Ok(());
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx("receiving on", "the DNS socket"),
        };
        let SocketAddr::V4(from) = client else {
            continue;
        };
        let query = &buf[..n];
        let visible = holders.visible(*from.ip(), &leases, &others());
        match decide(query, *from.ip(), &visible, &host) {
            Decision::Reply(bytes) => {
                let _ = listen.send_to(&bytes, client);
            }
            Decision::Forward(upstreams) => {
                forward(&upstream, &pending, query, client, &upstreams);
            }
            Decision::Drop => {}
        }
    }
}

/// Sends `query` upstream under a fresh random id, remembering whom to
/// answer.
fn forward(
    upstream: &UdpSocket,
    pending: &Mutex<HashMap<u16, Pending>>,
    query: &[u8],
    client: SocketAddr,
    upstreams: &[SocketAddrV4],
) {
    let Ok(mut table) = pending.lock() else {
        return;
    };
    table.retain(|_, p| p.sent.elapsed() < FORWARD_TIMEOUT);
    if table.len() >= MAX_PENDING || query.len() < 2 {
        return;
    }
    let id = loop {
        let mut b = [0u8; 2];
        if rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).is_err() {
            return;
        }
        let id = u16::from_be_bytes(b);
        if !table.contains_key(&id) {
            break id;
        }
    };
    let original = u16::from_be_bytes([query[0], query[1]]);
    // Spread questions over the resolvers; a client's retry gets another id
    // and so, likely, another resolver.
    let to = upstreams[usize::from(id) % upstreams.len()];
    let mut relayed = query.to_vec();
    relayed[..2].copy_from_slice(&id.to_be_bytes());
    if upstream.send_to(&relayed, to).is_ok() {
        table.insert(
            id,
            Pending {
                client,
                id: original,
                upstream: to,
                sent: Instant::now(),
            },
        );
    }
}

/// Passes upstream answers back to the clients that asked, with their ids.
fn relay_answers(upstream: &UdpSocket, listen: &UdpSocket, pending: &Mutex<HashMap<u16, Pending>>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let Ok((n, from)) = upstream.recv_from(&mut buf) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if n < 2 {
            continue;
        }
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        let Some(p) = pending.lock().ok().and_then(|mut t| {
            // Only the resolver that was asked may answer.
            match t.get(&id) {
                Some(p) if SocketAddr::V4(p.upstream) == from => t.remove(&id),
                _ => None,
            }
        }) else {
            continue;
        };
        buf[..2].copy_from_slice(&p.id.to_be_bytes());
        let _ = listen.send_to(&buf[..n], p.client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::Endpoint;
    use simple_dns::{Name, Question};

    fn holder(ip: [u8; 4], names: &[&str], forward: bool) -> Holder {
        Holder {
            ip: Ipv4Addr::from(ip),
            owner: format!("{ip:?}"),
            endpoint: Endpoint {
                names: names.iter().map(|n| n.to_string()).collect(),
                dns: Vec::new(),
                forward,
            },
        }
    }

    fn query(name: &str, qtype: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(0x1234);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(Question::new(
            Name::new_unchecked(name),
            qtype.into(),
            CLASS::IN.into(),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    fn answer(d: Decision) -> (RCODE, Vec<Ipv4Addr>) {
        let Decision::Reply(bytes) = d else {
            panic!("not a reply: {d:?}")
        };
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!(p.id(), 0x1234);
        let ips = p
            .answers
            .iter()
            .filter_map(|a| match &a.rdata {
                RData::A(a) => Some(Ipv4Addr::from(a.address)),
                _ => None,
            })
            .collect();
        (p.rcode(), ips)
    }

    #[test]
    fn names_on_the_network_resolve_and_others_do_not_leak() {
        let holders = [
            holder([10, 90, 0, 2], &["web", "www"], true),
            holder([10, 90, 0, 3], &["db"], false),
            holder([10, 90, 0, 4], &["www"], true),
        ];
        let host = [SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 53), 53)];
        let me = Ipv4Addr::new(10, 90, 0, 3);
        let ask =
            |name: &str, t: TYPE, src: Ipv4Addr| decide(&query(name, t), src, &holders, &host);
        assert_eq!(
            answer(ask("web", TYPE::A, me)),
            (RCODE::NoError, vec![Ipv4Addr::new(10, 90, 0, 2)])
        );
        assert_eq!(
            answer(ask("WWW.", TYPE::A, me)).1.len(),
            2,
            "an alias on two"
        );
        assert_eq!(answer(ask("web", TYPE::AAAA, me)), (RCODE::NoError, vec![]));
        assert_eq!(answer(ask("elsewhere", TYPE::A, me)).0, RCODE::NameError);
        // db may not reach out: nothing is forwarded for it.
        assert_eq!(answer(ask("example.org", TYPE::A, me)).0, RCODE::Refused);
        let web = Ipv4Addr::new(10, 90, 0, 2);
        assert_eq!(
            ask("example.org", TYPE::A, web),
            Decision::Forward(host.to_vec())
        );
        // Someone without a lease gets nothing.
        let stranger = Ipv4Addr::new(10, 90, 0, 9);
        assert_eq!(answer(ask("web", TYPE::A, stranger)).0, RCODE::Refused);
    }

    #[test]
    fn a_containers_own_resolvers_come_first() {
        let mut h = holder([10, 90, 0, 2], &["web"], true);
        h.endpoint.dns = vec![Ipv4Addr::new(10, 9, 9, 9)];
        let d = decide(&query("example.org", TYPE::A), h.ip, &[h.clone()], &[]);
        assert_eq!(
            d,
            Decision::Forward(vec![SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 53)])
        );
        h.endpoint.dns.clear();
        assert_eq!(
            answer(decide(&query("example.org", TYPE::A), h.ip, &[h], &[])).0,
            RCODE::ServerFailure
        );
    }

    #[test]
    fn bad_messages_are_dropped_or_refused() {
        let h = [holder([10, 90, 0, 2], &["web"], true)];
        let src = h[0].ip;
        for bad in [&b""[..], b"\x12", b"\x12\x34\x01\x00\x00\x05", &[0xff; 64]] {
            assert_eq!(decide(bad, src, &h, &[]), Decision::Drop, "{bad:?}");
        }
        // An answer is not a question.
        let Decision::Reply(reply) = decide(&query("web", TYPE::A), src, &h, &[]) else {
            panic!()
        };
        assert_eq!(decide(&reply, src, &h, &[]), Decision::Drop);
        // Two questions in one message are not served.
        let mut p = Packet::new_query(0x1234);
        for n in ["web", "db"] {
            p.questions.push(Question::new(
                Name::new_unchecked(n),
                TYPE::A.into(),
                CLASS::IN.into(),
                false,
            ));
        }
        let two = p.build_bytes_vec().unwrap();
        assert_eq!(answer(decide(&two, src, &h, &[])).0, RCODE::NotImplemented);
    }

    #[test]
    fn names_on_the_askers_other_networks_are_visible_and_no_others() {
        let dir = tempfile::tempdir().unwrap();
        let lease = |net: &str, owner: &str, last: u8, third: u8| {
            let l = Leases::new(&dir.path().join(format!("{net}.json")));
            let subnet: crate::ipam::Subnet = format!("10.9{third}.0.0/24").parse().unwrap();
            let ip = Ipv4Addr::new(10, 90 + third, 0, last);
            let endpoint = Endpoint {
                names: vec![owner.to_string()],
                dns: Vec::new(),
                forward: true,
            };
            l.acquire(net, subnet, subnet.first(), owner, Some(ip), endpoint)
                .unwrap();
            l
        };
        let a = lease("a", "x", 2, 1);
        lease("a", "y", 3, 1);
        let b = lease("b", "x", 2, 2);
        lease("b", "z", 3, 2);
        let c = lease("c", "w", 2, 3);
        let mut h = Holders::default();
        let names = |v: Vec<Holder>| v.into_iter().map(|h| h.owner).collect::<Vec<_>>();
        let x = Ipv4Addr::new(10, 91, 0, 2);
        let seen = names(h.visible(x, &a, &[b.clone(), c.clone()]));
        assert!(
            seen.contains(&"y".into()) && seen.contains(&"z".into()),
            "{seen:?}"
        );
        assert!(!seen.contains(&"w".into()), "{seen:?}");
        // y is on a only: it sees a's names alone.
        let y = Ipv4Addr::new(10, 91, 0, 3);
        assert_eq!(names(h.visible(y, &a, &[b, c])), ["x", "y"]);
    }

    #[test]
    fn resolv_conf_parsing() {
        let text =
            "# x\nnameserver 10.255.255.53\nnameserver ::1\nsearch a.b\nnameserver 1.1.1.1 \n";
        assert_eq!(
            resolvers_in(text),
            vec![
                SocketAddrV4::new(Ipv4Addr::new(10, 255, 255, 53), 53),
                SocketAddrV4::new(Ipv4Addr::new(1, 1, 1, 1), 53)
            ]
        );
    }
}
