//! Networks, as root and rootless: an address per container from the
//! network's IPAM, names through each network's DNS responder, networks kept
//! apart by nftables, published ports (kernel NAT as root, the userspace
//! forwarder rootless), egress control, pods on networks, and nothing left
//! behind. Traffic stays between containers and test namespaces this test
//! makes, and the host's 127.0.0.1.
//!
//! Most tests are one function run twice, `NAME::as_root` and
//! `NAME::rootless` (as a freshly created user). The tests run in parallel, each with its own
//! store, on one host: every test gives its networks subnets of its own
//! (10.20x as root, 10.21x rootless; test hosts 10.23x and 10.24x).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{stderr, Estiba};

/// Each test below is one function run twice, as root and as a freshly
/// created user: `NAME::as_root` and `NAME::rootless`.
macro_rules! as_root_and_rootless {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn as_root() {
                if let Some(e) = super::setup(super::Mode::Root) {
                    super::$name(&e);
                }
            }

            #[test]
            fn rootless() {
                if let Some(e) = super::setup(super::Mode::Rootless) {
                    super::$name(&e);
                }
            }
        }
    )*};
}

as_root_and_rootless!(
    containers_on_a_network_reach_each_other_and_no_one_else,
    leases_and_links_never_outlive_their_containers,
    published_ports_reach_the_container_from_the_host,
    an_internal_network_has_no_route_out,
    egress_allow_and_deny_are_enforced_inside_the_container,
    names_resolve_through_the_networks_own_dns_and_only_there,
    a_pods_containers_share_one_address_on_its_network,
    a_container_on_two_networks_is_reachable_on_both,
    bad_network_input_is_refused_and_sets_nothing_up,
    udp_published_ports_carry_datagrams,
);

/// Networks as root (bridges on the host, kernel NAT) or rootless (bridges
/// in the user's hub namespace, slirp4netns, the userspace forwarder).
enum Mode {
    Root,
    Rootless,
}

/// An installation for `mode` with busybox, or None (said why) if this
/// host cannot run the test.
fn setup(mode: Mode) -> Option<Estiba> {
    if !common::require_root("networks (and a test user)")
        || !common::require_tool("nft")
        || !common::require_tool("busybox")
    {
        return None;
    }
    Some(match mode {
        Mode::Root => Estiba::root().with_busybox(),
        Mode::Rootless => Estiba::rootless().with_busybox(),
    })
}

/// The same test runs as root and rootless, in parallel: each mode gets
/// its own subnets (10.20x as root, 10.21x rootless), test hosts (10.23x
/// and 10.24x) and test host names.
fn s(e: &Estiba, text: &str) -> String {
    if e.user.is_none() {
        return text.to_string();
    }
    text.replace("10.20", "10.21")
        .replace("10.23", "10.24")
        .replace("esttesthost", "estrlhost")
}

const HTTP_GET: &str = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3";

/// A detached busybox httpd serving `body` on port 80.
fn web(e: &Estiba, name: &str, network: &str, body: &str) {
    e.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "busybox",
        "sh",
        "-c",
        &format!("mkdir /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www"),
    ]);
}

/// Fetches `http://host/` from a new container on `network`.
fn fetch(e: &Estiba, network: &str, host: &str) -> std::process::Output {
    fetch_port(e, network, host, 80)
}

/// Fetches `http://host:port/` from a new container on `network`.
fn fetch_port(e: &Estiba, network: &str, host: &str, port: u16) -> std::process::Output {
    e.run(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "sh",
        "-c",
        &format!("{HTTP_GET} {host} {port}"),
    ])
}

/// The links where the installation's bridges are: the host's as root,
/// the user's hub rootless (nothing if there is no hub).
fn host_links(e: &Estiba) -> String {
    let cmd = match e.user {
        None => "ip -br link".to_string(),
        Some(_) => format!(
            "nsenter --net={}/run/netns/hub ip -br link 2>/dev/null",
            e.dir.path().display()
        ),
    };
    common::sh_output(&cmd)
}

/// The installation's container network namespaces, by name.
fn host_netns(e: &Estiba) -> String {
    let cmd = match e.user {
        None => "ip netns list".to_string(),
        Some(_) => format!("ls {}/run/netns 2>/dev/null", e.dir.path().display()),
    };
    common::sh_output(&cmd)
}

fn inspect(e: &Estiba, network: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&e.ok(&["network", "inspect", network])).unwrap();
    v[0].clone()
}

fn containers_on_a_network_reach_each_other_and_no_one_else(e: &Estiba) {
    e.ok(&[
        "network",
        "create",
        "front",
        "--subnet",
        &s(e, "10.201.1.0/24"),
    ]);
    e.ok(&[
        "network",
        "create",
        "back",
        "--subnet",
        &s(e, "10.201.2.0/24"),
    ]);
    web(e, "web", "front", "hello-front");
    let net = inspect(e, "front");
    let web_ip = net["Containers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["IPv4Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(web_ip.starts_with(&s(e, "10.201.1.")), "{net}");

    // Same network: by name and by address.
    for host in ["web", web_ip.as_str()] {
        let out = fetch(e, "front", host);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("hello-front"),
            "{host}: {}",
            stderr(&out)
        );
    }
    // The container's own view: its address, its gateway, its peers.
    let inside = e.ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        "--ip",
        &s(e, "10.201.1.77"),
        "busybox",
        "sh",
        "-c",
        "ip -4 addr show eth0; ip route; cat /etc/hosts",
    ]);
    assert!(inside.contains(&s(e, "inet 10.201.1.77/24")), "{inside}");
    assert!(inside.contains(&s(e, "default via 10.201.1.1")), "{inside}");
    assert!(inside.contains(&format!("{web_ip}\tweb ")), "{inside}");

    // Another network reaches neither the name nor the address.
    let out = fetch(e, "back", &web_ip);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hello-front"));
    assert!(!out.status.success());
    let out = fetch(e, "back", "web");
    assert!(
        !out.status.success(),
        "a name from another network resolved"
    );

    // Root in the container cannot lift the rules: it has no CAP_NET_ADMIN.
    let out = e.run(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "ip",
        "link",
        "set",
        "eth0",
        "down",
    ]);
    assert!(
        !out.status.success(),
        "root in the container changed its network"
    );

    e.ok(&["rm", "-f", "web"]);
    e.ok(&["network", "rm", "front", "back"]);
}

/// The pids and command lines of the installation's processes (root's, or
/// the test user's) whose command line holds every one of `words`.
fn processes_with(e: &Estiba, words: &[&str]) -> Vec<(i32, String)> {
    let uid = match e.user {
        None => 0,
        Some(user) => common::sh_output(&format!("id -u {user}"))
            .trim()
            .parse()
            .unwrap(),
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let owner = std::fs::read_to_string(entry.path().join("status"))
            .ok()
            .and_then(|st| {
                st.lines()
                    .find(|l| l.starts_with("Uid:"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            });
        if owner != Some(uid) {
            continue;
        }
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if words.iter().all(|w| args.iter().any(|a| a == w)) {
            found.push((pid, args.join(" ")));
        }
    }
    found
}

/// Everything a container's network leaves on the host, counted by the
/// container ids it names. A DNS responder whose starter was killed before
/// it was told to stop exits by itself within a second of its network
/// emptying, so this looks again for up to three seconds.
fn leftovers(e: &Estiba, network: &str, ids: &[String]) -> Vec<String> {
    common::poll(
        std::time::Duration::from_secs(3),
        || leftovers_now(e, network, ids),
        Vec::is_empty,
    )
}

fn leftovers_now(e: &Estiba, network: &str, ids: &[String]) -> Vec<String> {
    let (netns, links) = (host_netns(e), host_links(e));
    let mut left = Vec::new();
    for id in ids {
        let short = &id[..12];
        if netns.contains(&format!("es-{short}")) {
            left.push(format!("namespace es-{short}"));
        }
        if links.contains(&format!("ve{short}")) {
            left.push(format!("veth ve{short}"));
        }
    }
    let leases = e
        .dir
        .path()
        .join(format!("data/networks/leases/{network}.json"));
    if let Ok(text) = std::fs::read_to_string(&leases) {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if !v["leases"].as_object().unwrap().is_empty() {
            left.push(format!("leases {}", v["leases"]));
        }
    }
    let ports = e.dir.path().join("data/networks/.ports.json");
    if let Ok(text) = std::fs::read_to_string(&ports) {
        if ids.iter().any(|id| text.contains(id.as_str())) {
            left.push(format!("published ports {text}"));
        }
    }
    for (_, p) in processes_with(e, &["internal-dns", network]) {
        left.push(format!("DNS responder {p}"));
    }
    for id in ids {
        for (_, p) in processes_with(e, &["internal-forward", id]) {
            left.push(format!("port forwarder {p}"));
        }
    }
    if e.user.is_some() {
        // The hub and slirp4netns go with the last container.
        if !host_links(e).is_empty() {
            left.push(format!("the hub: {}", host_links(e)));
        }
        for (_, p) in processes_with(e, &["slirp4netns"]) {
            if p.contains(&e.dir.path().display().to_string()) {
                left.push(format!("slirp4netns {p}"));
            }
        }
    }
    left
}

fn leases_and_links_never_outlive_their_containers(e: &Estiba) {
    e.ok(&[
        "network",
        "create",
        "churn",
        "--subnet",
        &s(e, "10.202.0.0/28"),
    ]);
    // 100 containers through a /28 (13 addresses): leases must come back.
    let mut ids = Vec::new();
    for i in 0..100 {
        let name = format!("c{i}");
        let mut args = vec!["run", "-d", "--name", &name, "--network", "churn"];
        if i % 10 == 0 {
            args.extend(["-p", "127.0.0.1::80"]);
        }
        args.extend(["busybox", "sleep", "60"]);
        ids.push(e.ok(&args).trim().to_string());
        e.ok(&["rm", "-f", &name]);
    }
    assert_eq!(leftovers(e, "churn", &ids), Vec::<String>::new());

    // A kill -9 in the middle of a run: once its namespace is up, and once
    // a moment after it started. The next commands (rm of what is left,
    // then network prune) reconcile.
    for wait_for_namespace in [true, false] {
        let before: std::collections::BTreeSet<String> = e
            .ok(&["ps", "-aq", "--no-trunc"])
            .lines()
            .map(String::from)
            .collect();
        let mut run = e.cmd(&[
            "run",
            "--rm",
            "--network",
            "churn",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "sleep",
            "60",
        ]);
        let mut child = run.spawn().unwrap();
        let what = if wait_for_namespace {
            "the run's container and its namespace"
        } else {
            "the run's container"
        };
        common::wait_until(what, std::time::Duration::from_secs(20), || {
            let new: Vec<String> = e
                .ok(&["ps", "-aq", "--no-trunc"])
                .lines()
                .filter(|id| !before.contains(*id))
                .map(String::from)
                .collect();
            let attached = new
                .iter()
                .any(|id| host_netns(e).contains(&format!("es-{}", &id[..12])));
            (!wait_for_namespace && !new.is_empty()) || attached
        });
        // Every estiba process of this run (rootless, the outer one and the
        // one inside the user namespace).
        for (pid, _) in processes_with(e, &["run", "--rm", "churn", "sleep"]) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        child.wait().unwrap();
        for id in e.ok(&["ps", "-aq", "--no-trunc"]).lines() {
            if !before.contains(id) {
                ids.push(id.to_string());
                e.ok(&["rm", "-f", id]);
            }
        }
        e.ok(&["network", "prune"]);
        assert_eq!(leftovers(e, "churn", &ids), Vec::<String>::new());
        e.ok(&[
            "network",
            "create",
            "churn",
            "--subnet",
            &s(e, "10.202.0.0/28"),
        ]);
    }

    // A network in use cannot go; one that is free can.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "--network",
        "churn",
        "busybox",
        "sleep",
        "60",
    ]);
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "holder"])).unwrap();
    let id = v[0]["Id"].as_str().unwrap().to_string();
    assert!(host_netns(e).contains(&format!("es-{}", &id[..12])));
    assert_eq!(processes_with(e, &["internal-dns", "churn"]).len(), 1);
    let out = e.run(&["network", "rm", "churn"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    e.ok(&["rm", "-f", "holder"]);
    assert_eq!(leftovers(e, "churn", &[id]), Vec::<String>::new());
    let bridge = inspect(e, "churn")["Bridge"].as_str().unwrap().to_string();
    e.ok(&["network", "rm", "churn"]);
    assert!(
        !host_links(e).contains(&bridge),
        "the bridge outlived its network"
    );
    // With no network and no port left, the store's nftables tables go.
    let tables = common::sh_output("nft list tables");
    let table = store_table(e);
    assert!(!tables.contains(&table), "{table} is left: {tables}");
}

/// The store's nftables table: `estiba_` and the FNV-1a hash of its
/// networks directory (see `Networks::table`); the NAT table adds `_nat`.
fn store_table(e: &Estiba) -> String {
    let dir = e.dir.path().join("data/networks");
    let mut h: u32 = 0x811c_9dc5;
    for b in dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    format!("estiba_{h:08x}")
}

fn bad_network_input_is_refused_and_sets_nothing_up(e: &Estiba) {
    e.ok(&[
        "network",
        "create",
        "one",
        "--subnet",
        &s(e, "10.203.0.0/24"),
    ]);
    let refused = |args: &[&str], says: &str| {
        let out = e.run(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    };
    refused(
        &[
            "network",
            "create",
            "two",
            "--subnet",
            &s(e, "10.203.0.128/25"),
        ],
        "overlaps network one",
    );
    refused(
        &[
            "network",
            "create",
            "two",
            "--subnet",
            &s(e, "10.204.0.1/24"),
        ],
        "host bits",
    );
    refused(
        &["network", "create", "two", "--subnet", "nonsense"],
        "invalid subnet",
    );
    refused(
        &[
            "network",
            "create",
            "two",
            "--subnet",
            &s(e, "10.204.0.0/24"),
            "--gateway",
            &s(e, "10.205.0.1"),
        ],
        "not a usable address",
    );
    refused(&["network", "create", "one"], "already exists");
    refused(&["network", "create", "host"], "invalid network name");
    refused(
        &[
            "run",
            "--rm",
            "--network",
            "one",
            "--ip",
            "10.9.9.9",
            "busybox",
            "true",
        ],
        "not a usable address",
    );
    refused(
        &[
            "run",
            "--rm",
            "--ip",
            &s(e, "10.203.0.9"),
            "busybox",
            "true",
        ],
        "needs --network",
    );
    refused(
        &["run", "--rm", "--network", "nosuch", "busybox", "true"],
        "not found",
    );
    // An address already taken.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "one",
        "--ip",
        &s(e, "10.203.0.9"),
        "busybox",
        "sleep",
        "60",
    ]);
    let out = e.run(&[
        "run",
        "--rm",
        "--network",
        "one",
        "--ip",
        &s(e, "10.203.0.9"),
        "busybox",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already leased"), "{}", stderr(&out));
    e.ok(&["rm", "-f", "a"]);
    let names: Vec<String> = e
        .ok(&["network", "ls"])
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    assert_eq!(names, ["one"], "nothing half made");
    e.ok(&["network", "rm", "one"]);
}

/// GET / on 127.0.0.1:port, from the host, until something answers (empty
/// if nothing did within 5 s).
fn host_get(port: u16) -> String {
    use std::io::{Read, Write};
    let once = || {
        let mut out = String::new();
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(3)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let _ = s.read_to_string(&mut out);
        }
        out
    };
    // A whole answer: a userspace forwarder (rootless) takes the
    // connection before the server behind it listens, and closes it.
    common::poll(std::time::Duration::from_secs(15), once, |out| {
        out.starts_with("HTTP/")
    })
}

fn published_ports_reach_the_container_from_the_host(e: &Estiba) {
    e.ok(&[
        "network",
        "create",
        "pub",
        "--subnet",
        &s(e, "10.205.0.0/24"),
    ]);
    let port = common::free_port();
    let spec = format!("127.0.0.1:{port}:80");
    e.ok(&[
        "run",
        "-d",
        "--name",
        "site",
        "--network",
        "pub",
        "-p",
        &spec,
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo published-page > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    assert!(
        host_get(port).contains("published-page"),
        "127.0.0.1:{port} did not reach the container"
    );
    if e.user.is_some() {
        // Rootless, a forwarder killed with -9 comes back with `network prune`.
        let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "site"])).unwrap();
        let id = v[0]["Id"].as_str().unwrap().to_string();
        for (pid, _) in processes_with(e, &["internal-forward", &id]) {
            common::sh_output(&format!("kill -KILL {pid}"));
        }
        e.ok(&["network", "prune"]);
        assert!(host_get(port).contains("published-page"));
    }
    assert_eq!(
        e.ok(&["port", "site"]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );

    // The same port again, and malformed mappings: refused, nothing set up.
    let out = e.run(&[
        "run",
        "--rm",
        "--network",
        "pub",
        "-p",
        &spec,
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("already published"),
        "{}",
        stderr(&out)
    );
    for bad in [
        "80:",
        "x:80",
        "70000:80",
        "1:2:3:4",
        "80/sctp",
        "8000-8001:80",
    ] {
        let out = e.run(&[
            "run",
            "--rm",
            "--network",
            "pub",
            "-p",
            bad,
            "busybox",
            "true",
        ]);
        assert_eq!(out.status.code(), Some(125), "{bad}");
        assert!(
            stderr(&out).contains("port mapping"),
            "{bad}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        inspect(e, "pub")["Containers"].as_object().unwrap().len(),
        1,
        "a refused run left a lease"
    );

    // -P: the image's EXPOSEd ports on free host ports.
    let ctx = e.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM busybox\nEXPOSE 80\nCMD [\"sh\", \"-c\", \"mkdir /www && echo exposed-page > /www/index.html && exec httpd -f -p 80 -h /www\"]\n",
    )
    .unwrap();
    e.ok(&["build", "-q", "-t", "exposed", ctx.to_str().unwrap()]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "auto",
        "--network",
        "pub",
        "-P",
        "exposed",
    ]);
    let listed = e.ok(&["port", "auto"]);
    let auto_port: u16 = listed.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(listed.starts_with("80/tcp -> 0.0.0.0:"), "{listed}");
    assert!(host_get(auto_port).contains("exposed-page"));

    // Removing the container removes its rules.
    e.ok(&["rm", "-f", "site", "auto"]);
    let rules = String::from_utf8_lossy(
        &std::process::Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!rules.contains(&format!("dport {port} ")), "{rules}");
    assert!(!rules.contains(&format!("dport {auto_port} ")), "{rules}");
    e.ok(&["network", "rm", "pub"]);
}

/// A test host: a network namespace of the test's own, joined to the host
/// by a veth pair, serving HTTP on 8080 with the host's busybox.
struct TestHost {
    ns: String,
    server: std::process::Child,
}

impl TestHost {
    fn start(ns: &str, host_ip: &str, ns_ip: &str) -> TestHost {
        let sh = |cmd: &str| {
            let ok = std::process::Command::new("sh")
                .args(["-c", cmd])
                .status()
                .unwrap()
                .success();
            assert!(ok, "{cmd}");
        };
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(std::process::Stdio::null())
            .status();
        sh(&format!("ip netns add {ns}"));
        sh(&format!(
            "ip link add {ns}h type veth peer name eth0 netns {ns}"
        ));
        sh(&format!(
            "ip addr add {host_ip}/24 dev {ns}h && ip link set {ns}h up"
        ));
        sh(&format!("ip -n {ns} addr add {ns_ip}/24 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up"));
        sh(&format!("ip -n {ns} route add default via {host_ip}"));
        let www = std::env::temp_dir().join(format!("{ns}-www"));
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "test-host-page\n").unwrap();
        let server = std::process::Command::new("ip")
            .args([
                "netns", "exec", ns, "busybox", "httpd", "-f", "-p", "8080", "-h",
            ])
            .arg(&www)
            .spawn()
            .unwrap();
        // Made first, so that its drop cleans up if the server never answers.
        let mut host = TestHost {
            ns: ns.to_string(),
            server,
        };
        // timeout(1) rather than wget -T, which crashes in busybox 1.35.
        let get =
            format!("timeout 2 ip netns exec {ns} busybox wget -q -O- http://127.0.0.1:8080/");
        common::wait_until(
            &format!("the test host {ns} to serve on 8080"),
            std::time::Duration::from_secs(10),
            || {
                let exited = host.server.try_wait().unwrap();
                assert!(exited.is_none(), "the test host's httpd exited: {exited:?}");
                common::sh_output(&get).contains("test-host-page")
            },
        );
        host
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}

fn an_internal_network_has_no_route_out(e: &Estiba) {
    let host = TestHost::start(
        &s(e, "esttesthost1"),
        &s(e, "10.231.0.1"),
        &s(e, "10.231.0.2"),
    );
    e.ok(&[
        "network",
        "create",
        "open",
        "--subnet",
        &s(e, "10.206.0.0/24"),
    ]);
    e.ok(&[
        "network",
        "create",
        "sealed",
        "--subnet",
        &s(e, "10.206.1.0/24"),
        "--internal",
    ]);
    let reach = |network: &str| fetch_port(e, network, &s(e, "10.231.0.2"), 8080);
    let out = reach("open");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("test-host-page"),
        "a normal network reaches the test host: {}",
        stderr(&out)
    );
    let out = reach("sealed");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("test-host-page"),
        "the internal network got out"
    );
    assert!(!out.status.success());
    // Containers on the internal network still reach each other.
    web(e, "inside", "sealed", "inside-page");
    let out = fetch(e, "sealed", "inside");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("inside-page"),
        "{}",
        stderr(&out)
    );
    e.ok(&["rm", "-f", "inside"]);
    e.ok(&["network", "rm", "open", "sealed"]);
    drop(host);
}

fn egress_allow_and_deny_are_enforced_inside_the_container(e: &Estiba) {
    let s1 = TestHost::start(
        &s(e, "esttesthost2"),
        &s(e, "10.232.0.1"),
        &s(e, "10.232.0.2"),
    );
    let s2 = TestHost::start(
        &s(e, "esttesthost3"),
        &s(e, "10.233.0.1"),
        &s(e, "10.233.0.2"),
    );
    e.ok(&[
        "network",
        "create",
        "eg",
        "--subnet",
        &s(e, "10.207.0.0/24"),
    ]);
    let get = |flags: &[&str], server: &str| {
        let mut args = vec!["run", "--rm", "--network", "eg"];
        args.extend_from_slice(flags);
        let cmd = format!("{HTTP_GET} {server} 8080");
        args.extend_from_slice(&["busybox", "sh", "-c", &cmd]);
        let out = e.run(&args);
        String::from_utf8_lossy(&out.stdout).contains("test-host-page")
    };
    assert!(
        get(&[], &s(e, "10.232.0.2")) && get(&[], &s(e, "10.233.0.2")),
        "open by default"
    );
    let allow_s1 = ["--egress-allow", &s(e, "10.232.0.2:8080")];
    assert!(
        get(&allow_s1, &s(e, "10.232.0.2")),
        "the allowed server answers"
    );
    assert!(
        !get(&allow_s1, &s(e, "10.233.0.2")),
        "the other server is not reached"
    );
    let deny = ["--egress", "deny"];
    assert!(
        !get(&deny, &s(e, "10.232.0.2")) && !get(&deny, &s(e, "10.233.0.2")),
        "deny stops both"
    );

    // Root in the container has no CAP_NET_ADMIN, so it cannot flush the rules.
    let caps = e.ok(&[
        "run",
        "--rm",
        "--network",
        "eg",
        "--egress",
        "deny",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    let eff = u64::from_str_radix(caps.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(eff & (1 << 12), 0, "CAP_NET_ADMIN in {caps}");

    // Drops are counted.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "blocked",
        "--network",
        "eg",
        "--egress",
        "deny",
        "busybox",
        "sh",
        "-c",
        &format!("{HTTP_GET} {} 8080; sleep 60", s(e, "10.233.0.2")),
    ]);
    // Its request is dropped and counted, within a deadline.
    let dropped =
        |settings: &serde_json::Value| settings["EgressDropped"].as_u64().is_some_and(|d| d > 0);
    let settings = common::poll(
        std::time::Duration::from_secs(15),
        || {
            let v: serde_json::Value =
                serde_json::from_str(&e.ok(&["inspect", "blocked"])).unwrap();
            v[0]["NetworkSettings"].clone()
        },
        dropped,
    );
    assert!(
        settings["EgressDropped"].as_u64().is_some_and(|d| d > 0),
        "{settings}"
    );
    e.ok(&["rm", "-f", "blocked"]);

    // A network's default applies to containers that set none.
    e.ok(&[
        "network",
        "create",
        "locked",
        "--subnet",
        &s(e, "10.207.1.0/24"),
        "--egress",
        "deny",
        "--egress-allow",
        &s(e, "10.233.0.2:8080"),
    ]);
    let out = fetch_port(e, "locked", &s(e, "10.232.0.2"), 8080);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("test-host-page"),
        "the network's deny did not apply"
    );
    let out = fetch_port(e, "locked", &s(e, "10.233.0.2"), 8080);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("test-host-page"),
        "the network's allow-list did not apply"
    );
    let out = e.run(&[
        "run",
        "--rm",
        "--egress",
        "sometimes",
        "--network",
        "eg",
        "busybox",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    e.ok(&["network", "rm", "eg", "locked"]);
    drop((s1, s2));
}

/// A resolver of the test's own (on `at`, port 53) that answers every A
/// question with 192.0.2.7: the upstream a network's DNS forwards to.
fn upstream_resolver(at: &str) -> std::net::SocketAddr {
    let socket = std::net::UdpSocket::bind(at).unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let q = &buf[..n];
            if n < 12 {
                continue;
            }
            // The question: labels up to the root, then type and class.
            let mut end = 12;
            while end < n && q[end] != 0 {
                end += usize::from(q[end]) + 1;
            }
            end += 5;
            if end > n {
                continue;
            }
            let mut r = Vec::from(&q[..2]);
            r.extend([0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
            r.extend(&q[12..end]);
            r.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
            let _ = socket.send_to(&r, from);
        }
    });
    addr
}

fn names_resolve_through_the_networks_own_dns_and_only_there(e: &Estiba) {
    let at = if e.user.is_none() {
        "127.0.0.153:53"
    } else {
        "127.0.0.154:53"
    };
    let upstream = upstream_resolver(at);
    e.ok(&[
        "network",
        "create",
        "dnsa",
        "--subnet",
        &s(e, "10.208.1.0/24"),
    ]);
    e.ok(&[
        "network",
        "create",
        "dnsb",
        "--subnet",
        &s(e, "10.208.2.0/24"),
    ]);
    // The client comes first, so its /etc/hosts cannot know the server:
    // only DNS can.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "dnsa",
        "--add-host",
        &s(e, "gw.test:10.208.1.1"),
        "busybox",
        "sleep",
        "120",
    ]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "server",
        "--network",
        "dnsa",
        "--network-alias",
        "api",
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo by-name > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let files = e.ok(&["exec", "client", "cat", "/etc/resolv.conf", "/etc/hosts"]);
    assert!(files.contains(&s(e, "nameserver 10.208.1.1")), "{files}");
    assert!(files.contains(&s(e, "10.208.1.1\tgw.test")), "{files}");
    assert!(!files.contains("\tserver"), "{files}");
    for name in ["server", "api"] {
        let out = e.ok(&["exec", "client", "nslookup", name]);
        assert!(out.contains(&s(e, "Address: 10.208.1.3")), "{name}: {out}");
    }
    let page = e.ok(&["exec", "client", "sh", "-c", &format!("{HTTP_GET} api 80")]);
    assert!(page.contains("by-name"), "{page}");
    // A name is a name on its own network only.
    let out = e.run(&[
        "run",
        "--rm",
        "--network",
        "dnsb",
        "busybox",
        "nslookup",
        "server",
    ]);
    assert!(!out.status.success(), "{}", common::stdout(&out));
    assert!(
        common::stdout(&out).contains("NXDOMAIN"),
        "{}",
        common::stdout(&out)
    );
    // Other names go to the container's --dns (or the host's resolvers)...
    let dns = upstream.ip().to_string();
    let out = e.ok(&[
        "run",
        "--rm",
        "--network",
        "dnsa",
        "--dns",
        &dns,
        "busybox",
        "nslookup",
        "example.test",
    ]);
    assert!(out.contains("192.0.2.7"), "{out}");
    // ...except for a container that may not reach out: DNS is no way out.
    let out = e.run(&[
        "run",
        "--rm",
        "--network",
        "dnsa",
        "--dns",
        &dns,
        "--egress",
        "deny",
        "busybox",
        "sh",
        "-c",
        "nslookup server; nslookup example.test",
    ]);
    let text = common::stdout(&out);
    assert!(text.contains(&s(e, "Address: 10.208.1.3")), "{text}");
    assert!(!text.contains("192.0.2.7"), "{text}");
    // A responder killed with -9 comes back with `network prune` (which
    // also removes dnsb, now unused).
    for (pid, _) in processes_with(e, &["internal-dns", "dnsa"]) {
        common::sh_output(&format!("kill -KILL {pid}"));
    }
    e.ok(&["network", "prune"]);
    let out = e.ok(&["exec", "client", "nslookup", "server"]);
    assert!(out.contains(&s(e, "Address: 10.208.1.3")), "{out}");
    // The responder goes with the network's last container.
    assert_eq!(processes_with(e, &["internal-dns", "dnsa"]).len(), 1);
    e.ok(&["rm", "-f", "client", "server"]);
    assert!(processes_with(e, &["internal-dns", "dnsa"]).is_empty());
}

fn a_pods_containers_share_one_address_on_its_network(e: &Estiba) {
    e.ok(&[
        "network",
        "create",
        "podnet",
        "--subnet",
        &s(e, "10.209.1.0/24"),
    ]);
    let port = common::free_port().to_string();
    let pod = e.ok(&[
        "pod",
        "create",
        "--name",
        "shop",
        "--network",
        "podnet",
        "-p",
        &format!("127.0.0.1:{port}:80"),
    ]);
    let pod = pod.trim().to_string();
    e.ok(&[
        "run",
        "-d",
        "--pod",
        "shop",
        "--name",
        "front",
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo pod-page > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    e.ok(&[
        "run", "-d", "--pod", "shop", "--name", "side", "busybox", "sleep", "120",
    ]);
    let addr = |c: &str| e.ok(&["exec", c, "ip", "-4", "-o", "addr", "show", "eth0"]);
    let (a, b) = (addr("front"), addr("side"));
    assert!(a.contains(&s(e, "inet 10.209.1.")), "{a}");
    assert_eq!(a, b, "one address for the pod");
    // Inside the pod, over loopback; from the network, by the pod's name;
    // from the host, through the pod's published port.
    let local = e.ok(&[
        "exec",
        "side",
        "sh",
        "-c",
        &format!("{HTTP_GET} 127.0.0.1 80"),
    ]);
    assert!(local.contains("pod-page"), "{local}");
    let out = fetch(e, "podnet", "shop");
    assert!(
        common::stdout(&out).contains("pod-page"),
        "{}",
        stderr(&out)
    );
    // Its containers' own names lead to the pod's address too.
    let out = fetch(e, "podnet", "front");
    assert!(
        common::stdout(&out).contains("pod-page"),
        "{}",
        stderr(&out)
    );
    e.ok(&["rm", "-f", "side"]);
    let out = e.run(&[
        "run",
        "--rm",
        "--network",
        "podnet",
        "busybox",
        "nslookup",
        "side",
    ]);
    assert!(
        common::stdout(&out).contains("NXDOMAIN"),
        "a removed member still resolves"
    );
    assert!(host_get(port.parse().unwrap()).contains("pod-page"));
    // A pod's member cannot pick a network of its own.
    let out = e.run(&[
        "run",
        "--rm",
        "--pod",
        "shop",
        "--network",
        "podnet",
        "busybox",
        "true",
    ]);
    assert!(!out.status.success());
    e.ok(&["pod", "rm", "-f", "shop"]);
    assert_eq!(leftovers(e, "podnet", &[pod]), Vec::<String>::new());
    e.ok(&["network", "rm", "podnet"]);
}

fn a_container_on_two_networks_is_reachable_on_both(e: &Estiba) {
    e.ok(&[
        "network",
        "create",
        "left",
        "--subnet",
        &s(e, "10.200.1.0/24"),
    ]);
    e.ok(&[
        "network",
        "create",
        "right",
        "--subnet",
        &s(e, "10.200.2.0/24"),
    ]);
    e.ok(&[
        "run",
        "-d",
        "--name",
        "both",
        "--network",
        "left,right",
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo two-networks > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let addrs = e.ok(&["exec", "both", "ip", "-4", "-o", "addr"]);
    assert!(addrs.contains(&s(e, "eth0    inet 10.200.1.")), "{addrs}");
    assert!(addrs.contains(&s(e, "eth1    inet 10.200.2.")), "{addrs}");
    for network in ["left", "right"] {
        let out = fetch(e, network, "both");
        assert!(
            common::stdout(&out).contains("two-networks"),
            "from {network}: {}",
            stderr(&out)
        );
    }
    // Joining and leaving a network while running.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "late",
        "--network",
        "left",
        "busybox",
        "sleep",
        "120",
    ]);
    let ip = s(e, "10.200.2.77");
    e.ok(&[
        "network",
        "connect",
        "--alias",
        "late-right",
        "--ip",
        &ip,
        "right",
        "late",
    ]);
    let addrs = e.ok(&["exec", "late", "ip", "-4", "-o", "addr"]);
    assert!(addrs.contains(&format!("eth1    inet {ip}/24")), "{addrs}");
    let out = e.ok(&[
        "run",
        "--rm",
        "--network",
        "right",
        "busybox",
        "nslookup",
        "late-right",
    ]);
    assert!(out.contains(&format!("Address: {ip}")), "{out}");
    // Names on a container's second network resolve too (through its
    // first network's responder), and only for containers on both.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "rightonly",
        "--network",
        "right",
        "busybox",
        "sleep",
        "120",
    ]);
    let out = e.ok(&["exec", "late", "nslookup", "rightonly"]);
    assert!(out.contains(&s(e, "Address: 10.200.2.")), "{out}");
    let out = e.run(&[
        "run",
        "--rm",
        "--network",
        "left",
        "busybox",
        "nslookup",
        "rightonly",
    ]);
    assert!(
        common::stdout(&out).contains("NXDOMAIN"),
        "{}",
        common::stdout(&out)
    );
    e.ok(&["rm", "-f", "rightonly"]);
    let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", "late"])).unwrap();
    assert!(
        v[0]["NetworkSettings"]["Networks"]["right"]["IPAddress"].is_string(),
        "{v}"
    );
    e.ok(&["network", "disconnect", "right", "late"]);
    let addrs = e.ok(&["exec", "late", "ip", "-4", "-o", "addr"]);
    assert!(!addrs.contains(&s(e, "10.200.2.")), "{addrs}");
    let out = e.run(&["network", "disconnect", "left", "late"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("first network"), "{}", stderr(&out));
    let out = e.run(&["network", "connect", "left", "late"]);
    assert!(
        stderr(&out).contains("already on network left"),
        "{}",
        stderr(&out)
    );
    let ids: Vec<String> = ["both", "late"]
        .iter()
        .map(|n| {
            let v: serde_json::Value = serde_json::from_str(&e.ok(&["inspect", n])).unwrap();
            v[0]["Id"].as_str().unwrap().to_string()
        })
        .collect();
    e.ok(&["rm", "-f", "both", "late"]);
    assert_eq!(leftovers(e, "left", &ids), Vec::<String>::new());
    assert_eq!(leftovers(e, "right", &ids), Vec::<String>::new());
    e.ok(&["network", "rm", "left", "right"]);
}

/// UDP through a published port (iperf3's UDP test: a TCP control
/// connection and UDP datagrams both ways, on one port number): kernel NAT
/// as root, the userspace forwarder rootless.
fn udp_published_ports_carry_datagrams(e: &Estiba) {
    if !common::require_tool("iperf3") {
        return;
    }
    let tar = common::iperf_tar().to_str().unwrap().to_string();
    e.ok(&["import", &tar, "iperf"]);
    e.ok(&[
        "network",
        "create",
        "udpnet",
        "--subnet",
        &s(e, "10.209.2.0/24"),
    ]);
    let port = common::free_port();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "ipsrv",
        "--network",
        "udpnet",
        "-p",
        &format!("127.0.0.1:{port}:5201"),
        "-p",
        &format!("127.0.0.1:{port}:5201/udp"),
        "iperf",
        "iperf3",
        "-s",
    ]);
    let listed = e.ok(&["port", "ipsrv"]);
    assert!(
        listed.contains(&format!("5201/udp -> 127.0.0.1:{port}")),
        "{listed}"
    );
    // Until the server answers (it starts listening after `run -d` returns).
    let attempt = || {
        let out = std::process::Command::new("iperf3")
            .args([
                "-c",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-u",
                "-b",
                "20M",
                "-t",
                "2",
                "-J",
            ])
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.success(), report)
    };
    let (_, report) = common::poll(std::time::Duration::from_secs(30), attempt, |(ok, _)| *ok);
    let sum = &report["end"]["sum"];
    let packets = sum["packets"].as_u64().unwrap_or(0);
    let lost = sum["lost_percent"].as_f64().unwrap_or(100.0);
    assert!(packets > 100 && lost < 50.0, "{report}");
    e.ok(&["rm", "-f", "ipsrv"]);
    e.ok(&["network", "rm", "udpnet"]);
}
