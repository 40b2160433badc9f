//! The rootless port forwarder: a rootless user cannot add NAT rules to the
//! host, so a container's published ports are sockets of a small process of
//! the container's own. It binds the host addresses in the host's network
//! namespace, then enters the user's hub, from where it connects to the
//! container's address.
//!
//! What it cannot do: keep the client's address. The container sees
//! connections (and UDP datagrams) coming from its network's gateway, not
//! from the client. Root's kernel NAT keeps it.
//!
//! TCP bytes move with splice(2) through a pipe, so they are not copied
//! through user space.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ports::{Proto, Published};
use crate::{IoContext, Result};

/// A UDP client forgotten after this long without traffic.
const UDP_IDLE: Duration = Duration::from_secs(60);
/// Bytes moved per splice call, and the pipe's size.
const CHUNK: usize = 1 << 20;

enum Listener {
    Tcp(TcpListener, SocketAddr),
    Udp(UdpSocket, SocketAddr),
}

/// Binds the ports, enters `hub` (None: stays, for tests), calls `ready`,
/// and forwards until `done` says so (it is asked about once a second).
pub fn serve(
    published: &[Published],
    hub: Option<&Path>,
    ready: impl FnOnce() -> Result<()>,
    mut done: impl FnMut() -> bool,
) -> Result<()> {
    let mut listeners = Vec::new();
    for p in published {
        let m = &p.map;
        let target = SocketAddr::from((p.container_ip, m.container_port));
        let at = format!("{}:{}", m.host_ip, m.host_port);
        listeners.push(match m.proto {
            Proto::Tcp => Listener::Tcp(
                TcpListener::bind((m.host_ip, m.host_port)).ctx("listening on", &at)?,
                target,
            ),
            Proto::Udp => Listener::Udp(
                UdpSocket::bind((m.host_ip, m.host_port)).ctx("listening on", &at)?,
                target,
            ),
        });
    }
    // Threads started from here on open their sockets in the hub.
    if let Some(hub) = hub {
        crate::netns::enter(hub)?;
    }
    for l in listeners {
        match l {
            Listener::Tcp(listener, target) => {
                std::thread::spawn(move || accept_loop(&listener, target));
            }
            Listener::Udp(socket, target) => {
                std::thread::spawn(move || udp_loop(socket, target));
            }
        }
    }
    ready()?;
    while !done() {
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

fn accept_loop(listener: &TcpListener, target: SocketAddr) {
    loop {
        let Ok((client, _)) = listener.accept() else {
            // Out of descriptors, most likely: let some connections end.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        std::thread::spawn(move || {
            let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            let up = std::thread::spawn(move || pump(&c2, &s2));
            pump(&server, &client);
            let _ = up.join();
        });
    }
}

/// Moves bytes from `from` to `to` until `from` ends, then ends `to`'s
/// writing side.
fn pump(from: &TcpStream, to: &TcpStream) {
    if splice_all(from, to).is_err() {
        let _ = io::copy(&mut &*from, &mut &*to);
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// socket → pipe → socket with splice(2): zero-copy.
fn splice_all(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    use rustix::pipe::{fcntl_setpipe_size, pipe, splice, SpliceFlags};
    let (r, w) = pipe()?;
    // A bigger pipe moves more per call (the default holds 64 KiB).
    let _ = fcntl_setpipe_size(&w, CHUNK);
    let flags = SpliceFlags::MOVE | SpliceFlags::MORE;
    loop {
        let n = splice(from.as_fd(), None, w.as_fd(), None, CHUNK, flags)?;
        if n == 0 {
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            let m = splice(r.as_fd(), None, to.as_fd(), None, left, flags)?;
            if m == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            left -= m;
        }
    }
}

/// Each UDP client's socket towards the container, and when it was last
/// heard from.
type UdpClients = HashMap<SocketAddr, (Arc<UdpSocket>, Instant)>;

/// One socket towards the container per client, so its replies find their
/// way back.
fn udp_loop(listener: UdpSocket, target: SocketAddr) {
    let listener = Arc::new(listener);
    let clients: Arc<Mutex<UdpClients>> = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = listener.recv_from(&mut buf) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let Ok(mut table) = clients.lock() else {
            return;
        };
        table.retain(|_, (_, seen)| seen.elapsed() < UDP_IDLE);
        let upstream = match table.get_mut(&client) {
            Some((s, seen)) => {
                *seen = Instant::now();
                s.clone()
            }
            None => {
                let Ok(s) =
                    UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(target).map(|()| s))
                else {
                    continue;
                };
                let s = Arc::new(s);
                table.insert(client, (s.clone(), Instant::now()));
                let (back, listener) = (s.clone(), listener.clone());
                std::thread::spawn(move || replies(&back, &listener, client));
                s
            }
        };
        drop(table);
        let _ = upstream.send(&buf[..n]);
    }
}

fn replies(upstream: &UdpSocket, listener: &UdpSocket, client: SocketAddr) {
    let _ = upstream.set_read_timeout(Some(UDP_IDLE));
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = upstream.recv(&mut buf) {
        let _ = listener.send_to(&buf[..n], client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PortMap;
    use std::io::{Read, Write};
    use std::net::Ipv4Addr;

    fn free(proto: Proto) -> u16 {
        match proto {
            Proto::Tcp => TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port(),
            Proto::Udp => UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port(),
        }
    }

    /// TCP and UDP through the forwarder, to echo servers on loopback
    /// (without a hub: the namespaces are the integration tests' part).
    #[test]
    fn tcp_and_udp_reach_the_target_and_answer_back() {
        let tcp_echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp_target = tcp_echo.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut c in tcp_echo.incoming().flatten() {
                let mut buf = Vec::new();
                c.read_to_end(&mut buf).unwrap();
                c.write_all(&buf).unwrap();
            }
        });
        let udp_echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let udp_target = udp_echo.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = udp_echo.recv_from(&mut buf) {
                udp_echo.send_to(&buf[..n], from).unwrap();
            }
        });
        let (tcp_port, udp_port) = (free(Proto::Tcp), free(Proto::Udp));
        let published = |proto, host_port, container_port| Published {
            map: PortMap {
                host_ip: Ipv4Addr::LOCALHOST,
                host_port,
                container_port,
                proto,
            },
            container_ip: Ipv4Addr::LOCALHOST,
            bridge: "lo".into(),
        };
        let all = vec![
            published(Proto::Tcp, tcp_port, tcp_target),
            published(Proto::Udp, udp_port, udp_target),
        ];
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ready = || {
                tx.send(()).unwrap();
                Ok(())
            };
            serve(&all, None, ready, || false).unwrap();
        });
        rx.recv().unwrap();

        let payload = vec![7u8; 3 << 20];
        let mut c = TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
        let writer = {
            let mut c = c.try_clone().unwrap();
            let payload = payload.clone();
            std::thread::spawn(move || {
                c.write_all(&payload).unwrap();
                c.shutdown(std::net::Shutdown::Write).unwrap();
            })
        };
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert_eq!(back.len(), payload.len(), "every byte, both ways");

        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for word in [&b"one"[..], b"two"] {
            u.send_to(word, ("127.0.0.1", udp_port)).unwrap();
            let mut buf = [0u8; 16];
            let n = u.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], word);
        }
    }
}
