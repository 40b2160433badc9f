//! A network's DNS responder on any datagram: no panic; a reply is a
//! well-formed DNS message with the question's id; nothing is forwarded for
//! a container that may not reach out, nor for a name of one label.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use estiba_net::dns::{decide, Decision};
use estiba_net::ipam::{Endpoint, Holder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let holder = |last: u8, name: &str, forward: bool| Holder {
        ip: Ipv4Addr::new(10, 90, 0, last),
        owner: name.to_string(),
        endpoint: Endpoint {
            names: vec![name.to_string()],
            dns: Vec::new(),
            forward,
        },
    };
    let holders = [holder(2, "web", true), holder(3, "db", false)];
    let host = [SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 53), 53)];
    for src in [2, 3, 9] {
        match decide(data, Ipv4Addr::new(10, 90, 0, src), &holders, &host) {
            Decision::Reply(bytes) => {
                let reply = simple_dns::Packet::parse(&bytes).expect("replies parse");
                assert_eq!(&bytes[..2], &data[..2]);
                assert!(reply.has_flags(simple_dns::PacketFlag::RESPONSE));
            }
            Decision::Forward(_) => {
                assert_eq!(src, 2, "only a container that may reach out gets forwarding");
                let q = simple_dns::Packet::parse(data).expect("forwarded questions parse");
                assert!(q.questions[0].qname.to_string().trim_end_matches('.').contains('.'));
            }
            Decision::Drop => {}
        }
    }
});
