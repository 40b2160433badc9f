//! Lifecycle operations on records: create, the foreground run, stop, kill,
//! rm, wait, and reconciling a record with what is really alive.

use std::time::{Duration, Instant, SystemTime};

use estiba_runtime::rootfs;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::monitor::MONITOR_COMMAND;
use crate::record::{generate_name, validate_name, ContainerRecord, State, Status};
use estiba_events::Action;

use crate::error::IoContext;
use crate::{Engine, Error, Result};

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// True if `pid` is alive (and, when `marker` is given, its command line has it).
fn alive(pid: i32, marker: Option<&str>) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true);
    !zombie && marker.is_none_or(|m| cmdline.split(|b| *b == 0).any(|a| a == m.as_bytes()))
}

/// True if the record's monitor still runs: estiba's `internal-monitor`, the
/// small `estiba-monitor` it becomes, or a foreground `run`.
fn monitor_alive(state: &State) -> bool {
    let pid = state.monitor_pid;
    if pid <= 0 || !alive(pid, None) {
        return false;
    }
    if state.monitor_started != 0 {
        return estiba_os::process::start_time(pid) == Some(state.monitor_started);
    }
    // A record from before start times were kept: go by the command line.
    alive(pid, Some(MONITOR_COMMAND))
        || alive(pid, Some("run"))
        || std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            c.split(|b| *b == 0).next().is_some_and(|argv0| {
                argv0.ends_with(b"/estiba-monitor") || argv0 == b"estiba-monitor"
            })
        })
}

impl Engine {
    /// Records a new container from `request`; nothing runs yet. Journals
    /// `create`.
    pub fn create(&self, request: crate::api::CreateRequest) -> Result<ContainerRecord> {
        let crate::api::CreateRequest {
            image,
            name,
            mut options,
            health,
        } = request;
        let (image, name, health) = (image.as_str(), name.as_deref(), &health);
        crate::options::validate(&options)?;
        if let Some(name) = options.network.name() {
            self.check_network(name, options.ip)?;
        }
        for extra in &options.extra_networks {
            self.check_network(extra, None)?;
        }
        if let Some(wanted) = options.pod.clone() {
            let pod = self.find_pod(&wanted)?;
            if options.hostname.is_some() || options.network != crate::record::NetworkMode::None {
                return Err(Error::Invalid {
                    what: "pod member",
                    value: wanted,
                    why: "a pod's containers take its hostname and network".into(),
                });
            }
            options.hostname = Some(pod.hostname.clone());
            options.pod = Some(pod.id);
        }
        // A namespace joined by name is recorded by id: the name may go
        // to another container later.
        for mode in [&mut options.tuning.pid, &mut options.tuning.ipc] {
            match mode {
                crate::tuning::NamespaceMode::Container(c) => *c = self.find(c)?.id,
                crate::tuning::NamespaceMode::Pod(p) => *p = self.find_pod(p)?.id,
                _ => {}
            }
        }
        // libcontainer 0.7 runs `exec` without the container's seccomp
        // profile and fails to join a shared pid namespace: detached
        // containers (which get execs and health checks) and pod members
        // default to runc.
        if options.runtime.is_none()
            && (options.detached || options.pod.is_some() || options.tuning.joins_namespaces())
            && estiba_os::which("runc").is_some()
        {
            options.runtime = Some("runc".into());
        }
        let image_record = self.store.find_image(image)?;
        let raw_config: Value =
            serde_json::from_slice(&self.store.read_blob(&image_record.id)?).unwrap_or_default();
        // A check a library caller gave whole (the agent's, from a task
        // definition) stands as given; otherwise the flags over the image's.
        if options.health.is_none() {
            options.health =
                health.resolve(crate::health::HealthConfig::from_image(&raw_config))?;
        }
        if options.stop_signal.is_none() {
            options.stop_signal = raw_config["config"]["StopSignal"]
                .as_str()
                .map(parse_signal)
                .transpose()?;
        }
        for wanted in &options.secrets {
            if !self.secrets.list().iter().any(|s| s.name == wanted.name) {
                return Err(Error::Invalid {
                    what: "secret",
                    value: wanted.name.clone(),
                    why: "no such secret: create it with `estiba secret create`".into(),
                });
            }
        }
        let existing = self.records.list()?;
        let id = estiba_os::random_hex(32);
        let name = match name {
            Some(n) => {
                validate_name(n)?;
                if let Some(other) = existing.iter().find(|r| r.name == n) {
                    return Err(Error::NameInUse {
                        name: n.to_string(),
                        id: other.id.clone(),
                    });
                }
                n.to_string()
            }
            None => generate_name(
                &id,
                &existing.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
            ),
        };
        let record = ContainerRecord {
            id: id.clone(),
            name,
            image: image.to_string(),
            image_id: image_record.id.to_string(),
            created: now(),
            options,
            state: State::default(),
        };
        // Judged whole, as it would run, before anything is written.
        if let Some(admit) = &self.admission {
            for warning in admit(&record, &raw_config).map_err(Error::Refused)? {
                tracing::warn!(container = %record.name, "{warning}");
            }
        }
        let dir = self.records.dir(&id);
        std::fs::create_dir_all(&dir).ctx("creating", dir)?;
        self.records.save(&record)?;
        self.container_event(Action::Create, &record);
        Ok(record)
    }

    /// Runs a created container in the foreground: its output is ours,
    /// signals are forwarded, and its exit code is returned.
    pub fn run_foreground(
        &self,
        record: &ContainerRecord,
        warn: &mut dyn FnMut(&str),
    ) -> Result<u8> {
        let id = record.id.as_str();
        let dirs = self.dirs(id);
        let result = (|| -> Result<u8> {
            let image = self.store.find_image(&record.image_id)?;
            crate::prepare::set_up(self, &image, record, &dirs)?;
            for w in crate::prepare::write_bundle(self, &image, record, &dirs)? {
                warn(&w);
            }
            let runtime = self.runtime(record)?;
            let me = estiba_os::ProcessId::this();
            self.records.update(id, |r| {
                r.state.status = Status::Running;
                r.state.monitor_pid = me.pid;
                r.state.monitor_started = me.started;
                r.state.started_at = Some(now());
            })?;
            self.container_event(Action::Start, record);
            // Record the init's pid once it exists, so stop, kill and exec
            // from another terminal reach the container. The runtime calls
            // this before `run` returns, never after.
            let started = |pid: i32| {
                let _ = self.records.update(id, |r| r.state.pid = pid);
            };
            let code = runtime.run(id, &dirs.bundle(), &started);
            Ok(code?)
        })();
        dirs.unmount();
        self.volumes.close_for(record);
        let (code, error) = match &result {
            Ok(code) => (i32::from(*code), None),
            Err(e) => (i32::from(e.exit_code()), Some(e.to_string())),
        };
        // A container that never started did not die. (`runc run` has
        // removed the cgroup by now, so an OOM kill is not seen here.)
        let started = self
            .records
            .load(id)
            .is_ok_and(|r| r.state.started_at.is_some());
        if record.options.auto_remove {
            if started {
                self.died(record, code, false);
            }
            self.remove_files(record)?;
        } else {
            self.records.update(id, |r| {
                r.state.status = Status::Exited;
                r.state.exit_code = code;
                r.state.error = error;
                r.state.monitor_pid = 0;
                r.state.finished_at = Some(now());
            })?;
            if started {
                self.died(record, code, false);
            }
        }
        result
    }

    /// Every container, each reconciled with what is alive.
    pub fn list(&self) -> Result<Vec<ContainerRecord>> {
        self.records
            .list()?
            .into_iter()
            .map(|r| self.reconcile(r))
            .collect()
    }

    pub fn find(&self, wanted: &str) -> Result<ContainerRecord> {
        let r = self.records.find(wanted)?;
        self.reconcile(r)
    }

    /// A record says running, but its monitor was killed or the machine
    /// rebooted: trust the processes, not the record, and fix the record.
    fn reconcile(&self, r: ContainerRecord) -> Result<ContainerRecord> {
        if !matches!(r.state.status, Status::Running | Status::Restarting) {
            return Ok(r);
        }
        if monitor_alive(&r.state) || alive(r.state.pid, None) {
            return Ok(r);
        }
        self.records.update(&r.id, |r| {
            r.state.status = Status::Exited;
            r.state.exit_code = 255;
            r.state.error = Some("the container's monitor died; exit status unknown".into());
            r.state.finished_at.get_or_insert_with(now);
            r.state.pid = 0;
        })?;
        self.records.load(&r.id)
    }

    /// Freezes the container's processes (`pause`); journals `pause`.
    pub fn pause(&self, wanted: &str) -> Result<ContainerRecord> {
        self.set_paused(wanted, true)
    }

    /// Thaws a paused container; journals `unpause`.
    pub fn unpause(&self, wanted: &str) -> Result<ContainerRecord> {
        self.set_paused(wanted, false)
    }

    fn set_paused(&self, wanted: &str, paused: bool) -> Result<ContainerRecord> {
        let r = self.find(wanted)?;
        if r.state.status != Status::Running || !alive(r.state.pid, None) {
            return Err(Error::NotRunning { name: r.name });
        }
        if r.state.paused == paused {
            let why = if paused {
                "is already paused"
            } else {
                "is not paused"
            };
            return Err(Error::Invalid {
                what: "container",
                value: r.name,
                why: why.into(),
            });
        }
        let runtime = self.runtime(&r)?;
        if paused {
            runtime.pause(&r.id)?;
        } else {
            runtime.resume(&r.id)?;
        }
        self.records
            .update(&r.id, |rec| rec.state.paused = paused)?;
        let name = if paused { "pause" } else { "unpause" };
        self.container_event(Action::Other(name.into()), &r);
        self.find(&r.id)
    }

    /// A frozen process takes no signal: a paused container is thawed
    /// before it is signalled.
    fn thaw_for_signal(&self, r: &ContainerRecord) {
        if r.state.paused {
            if let Err(e) = self.unpause(&r.id) {
                tracing::warn!(container = %r.name, error = %e, "thawing before a signal");
            }
        }
    }

    /// Sends a signal to the container's init; asks the monitor not to restart.
    pub fn kill(&self, wanted: &str, signal: Signal) -> Result<ContainerRecord> {
        let r = self.find(wanted)?;
        if r.state.status != Status::Running || !alive(r.state.pid, None) {
            return Err(Error::NotRunning {
                name: r.name.clone(),
            });
        }
        self.thaw_for_signal(&r);
        self.records
            .update(&r.id, |r| r.state.stop_requested = true)?;
        // Before the signal, so it comes before the die it causes.
        self.kill_event(&r, signal);
        kill(Pid::from_raw(r.state.pid), signal).ctx("signalling", r.id.clone())?;
        Ok(r)
    }

    /// The stop signal, then SIGKILL after `timeout`; waits for the exit.
    pub fn stop(&self, wanted: &str, timeout: Duration) -> Result<ContainerRecord> {
        let r = self.find(wanted)?;
        self.records
            .update(&r.id, |r| r.state.stop_requested = true)?;
        if r.state.status == Status::Running && alive(r.state.pid, None) {
            self.thaw_for_signal(&r);
            let signal = r.options.stop_signal.unwrap_or(Signal::SIGTERM);
            self.kill_event(&r, signal);
            let _ = kill(Pid::from_raw(r.state.pid), signal);
            if !self.wait_exit(&r.id, timeout) {
                self.kill_event(&r, Signal::SIGKILL);
                let _ = kill(Pid::from_raw(r.state.pid), Signal::SIGKILL);
                self.wait_exit(&r.id, Duration::from_secs(10));
            }
        }
        self.wait_monitor(&r.id, Duration::from_secs(10));
        let stopped = match self.find(&r.id) {
            // An auto-removed container is gone once it has stopped.
            Err(Error::NoSuchContainer(_)) if r.options.auto_remove => r,
            other => other?,
        };
        self.container_event(Action::Stop, &stopped);
        Ok(stopped)
    }

    /// Stops the container and starts it again under its monitor.
    pub fn restart(&self, wanted: &str, timeout: Duration) -> Result<ContainerRecord> {
        let r = self.stop(wanted, timeout)?;
        // Before the start: the monitor journals its `start` once the
        // record says running, which is when start_detached returns.
        self.container_event(Action::Restart, &r);
        self.start_detached(&r.id)?;
        self.find(&r.id)
    }

    /// Waits until the record says the container stopped running. The
    /// monitor writes that once it has reaped the init; if the monitor died,
    /// `find` reconciles the record.
    fn wait_exit(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.find(id) {
                Ok(r) if r.state.status == Status::Running => {}
                _ => return true,
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the monitor has recorded the end and exited.
    fn wait_monitor(&self, id: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline
            && self.records.load(id).is_ok_and(|r| monitor_alive(&r.state))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes a container: refused while it runs unless `force`, which kills it.
    /// `rename`: a new name, unique among the store's containers. Its
    /// names on networks follow at its next start. Journals `rename` with
    /// `oldName`, as docker does.
    pub fn rename(&self, wanted: &str, name: &str) -> Result<ContainerRecord> {
        validate_name(name)?;
        let r = self.find(wanted)?;
        if let Some(other) = self
            .records
            .list()?
            .into_iter()
            .find(|o| o.name == name && o.id != r.id)
        {
            return Err(Error::NameInUse {
                name: name.to_string(),
                id: other.id,
            });
        }
        self.records
            .update(&r.id, |rec| rec.name = name.to_string())?;
        let renamed = self.find(&r.id)?;
        self.events.emit(
            crate::events::container(Action::Other("rename".into()), &renamed)
                .with("oldName", r.name),
        );
        Ok(renamed)
    }

    pub fn remove(&self, wanted: &str, force: bool) -> Result<ContainerRecord> {
        let r = self.find(wanted)?;
        let running = matches!(r.state.status, Status::Running | Status::Restarting);
        if running && !force {
            return Err(Error::Running { id: r.id.clone() });
        }
        self.records
            .update(&r.id, |r| r.state.stop_requested = true)?;
        // pid 0 would signal our own process group: only a live init is killed.
        if running && alive(r.state.pid, None) {
            let _ = kill(Pid::from_raw(r.state.pid), Signal::SIGKILL);
            self.wait_exit(&r.id, Duration::from_secs(10));
        }
        self.wait_monitor(&r.id, Duration::from_secs(10));
        self.remove_files(&r)?;
        Ok(r)
    }

    /// Deletes the runtime's state and the container's directory.
    pub(crate) fn remove_files(&self, r: &ContainerRecord) -> Result<()> {
        if let Ok(runtime) = self.runtime(r) {
            let _ = runtime.delete(&r.id, true);
        }

        self.detach_network(r);
        let dir = self.records.dir(&r.id);
        // Whoever removes it (the CLI, or the monitor of a --rm container)
        // says destroy, once, after it is gone.
        let existed = dir.exists();
        self.dirs(&r.id).unmount();
        // A late writer (a health check finishing) can add a file while the
        // tree goes: try again briefly.
        let mut last = Ok(());
        for _ in 0..5 {
            last = estiba_os::remove_tree(&dir);
            if last.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        last.ctx("removing", dir)?;
        let run = self.dirs(&r.id).run;
        estiba_os::remove_tree(&run).ctx("removing", run)?;
        if existed {
            self.container_event(Action::Destroy, r);
        }
        Ok(())
    }

    /// Blocks until the container has exited for good; returns its code.
    pub fn wait(&self, wanted: &str) -> Result<i32> {
        let id = self.find(wanted)?.id;
        loop {
            let r = self.find(&id)?;
            let restarting = r.state.status == Status::Restarting;
            let monitor_running = monitor_alive(&r.state);
            if r.state.status == Status::Exited && !monitor_running && !restarting {
                return Ok(r.state.exit_code);
            }
            if r.state.status == Status::Created && !monitor_running {
                return Ok(r.state.exit_code);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_path(&self, id: &str) -> std::path::PathBuf {
        self.dirs(id).log()
    }

    /// docker's `inspect` shape for a container.
    pub fn inspect_json(&self, r: &ContainerRecord) -> Value {
        let o = &r.options;
        let s = &r.state;
        json!({
            "Id": r.id,
            "Created": r.created,
            "Path": o.entrypoint.clone().or_else(|| o.command.first().cloned()),
            "Args": o.command,
            "State": {
                "Status": status_name(s.status),
                "Running": s.status == Status::Running,
                "Paused": s.paused && s.status == Status::Running,
                "Restarting": s.status == Status::Restarting,
                "OOMKilled": false,
                "Dead": false,
                "Pid": s.pid,
                "ExitCode": s.exit_code,
                "Error": s.error.clone().unwrap_or_default(),
                "StartedAt": s.started_at,
                "FinishedAt": s.finished_at,
                "Health": s.health,
            },
            "Image": r.image_id,
            "Name": format!("/{}", r.name),
            "RestartCount": s.restart_count,
            "NetworkSettings": self.network_settings(r),
            "LogPath": self.log_path(&r.id),
            "HostConfig": {
                "RestartPolicy": o.restart,
                "AutoRemove": o.auto_remove,
                "Memory": o.memory.unwrap_or(0),
                "NanoCpus": o.cpus.map_or(0, |c| (c * 1e9) as i64),
                "PidsLimit": o.pids_limit,
                "CpuShares": o.tuning.cpu_shares.unwrap_or(0),
                "MemoryReservation": o.tuning.memory_reservation.unwrap_or(0),
                "MemorySwap": o.tuning.memory_swap.unwrap_or(0),
                "MemorySwappiness": o.tuning.memory_swappiness,
                "ShmSize": o.tuning.shm_size.unwrap_or(estiba_runtime::spec::DEFAULT_SHM_SIZE),
                "Sysctls": o.tuning.sysctls,
                "Devices": o.tuning.devices.iter().map(|d| json!({
                    "PathOnHost": d.host, "PathInContainer": d.container, "CgroupPermissions": d.access,
                })).collect::<Vec<_>>(),
                "PidMode": o.tuning.pid.docker_name(""),
                "IpcMode": o.tuning.ipc.docker_name("private"),
                "DnsSearch": o.dns_search,
                "Privileged": o.privileged,
                "ReadonlyRootfs": o.read_only,
                "CapAdd": o.cap_add,
                "CapDrop": o.cap_drop,
                "SecurityOpt": security_opt_strings(&o.security),
                "NetworkMode": o.network,
                "PortBindings": port_bindings(&o.publish),
                "Egress": o.egress,
                "Binds": binds(&o.mounts),
                "Mounts": o.mounts,
                "ExtraHosts": o.add_hosts,
                "Dns": o.dns,
                "Secrets": o.secrets,
                "Runtime": o.runtime,
            },
            "Config": {
                "Hostname": o.hostname.clone().unwrap_or_else(|| r.id[..12].to_string()),
                "User": o.user.clone().unwrap_or_default(),
                "Env": o.env.iter().map(|e| e.split_once('=').map_or(e.clone(), |(k, _)| format!("{k}=…"))).collect::<Vec<_>>(),
                "Cmd": o.command,
                "Entrypoint": o.entrypoint,
                "Image": r.image,
                "WorkingDir": o.workdir.clone().unwrap_or_default(),
                "Labels": o.labels,
                "Tty": o.tty,
                "OpenStdin": o.interactive,
            },
            "Mounts": o.mounts.iter().map(|m| match m {
                crate::options::MountSpec::Bind { source, destination, read_only } => json!({
                    "Type": "bind", "Source": source, "Destination": destination, "RW": !read_only,
                }),
                crate::options::MountSpec::Volume { name, destination, read_only } => json!({
                    "Type": "volume", "Name": name, "Source": self.volumes.get(name).map(|v| v.mountpoint).ok(),
                    "Destination": destination, "Driver": "local", "RW": !read_only,
                }),
                crate::options::MountSpec::Tmpfs { destination, .. } => json!({
                    "Type": "tmpfs", "Destination": destination, "RW": true,
                }),
            }).collect::<Vec<_>>(),
        })
    }
}

/// docker's `HostConfig.PortBindings`: `{"80/tcp": [{"HostIp", "HostPort"}]}`.
fn port_bindings(maps: &[estiba_net::ports::PortMap]) -> Value {
    let mut out = serde_json::Map::new();
    for m in maps {
        let key = format!("{}/{}", m.container_port, m.proto.as_str());
        let port = match m.host_port {
            0 => String::new(),
            p => p.to_string(),
        };
        let entry = json!({"HostIp": m.host_ip.to_string(), "HostPort": port});
        if let Value::Array(list) = out.entry(key).or_insert_with(|| json!([])) {
            list.push(entry);
        }
    }
    Value::Object(out)
}

/// docker's `HostConfig.Binds`: the bind and volume mounts as `-v` strings.
fn binds(mounts: &[crate::options::MountSpec]) -> Vec<String> {
    use crate::options::MountSpec;
    let mode = |ro: bool| if ro { ":ro" } else { "" };
    mounts
        .iter()
        .filter_map(|m| match m {
            MountSpec::Bind {
                source,
                destination,
                read_only,
            } => Some(format!(
                "{}:{destination}{}",
                source.display(),
                mode(*read_only)
            )),
            MountSpec::Volume {
                name,
                destination,
                read_only,
            } => Some(format!("{name}:{destination}{}", mode(*read_only))),
            MountSpec::Tmpfs { .. } => None,
        })
        .collect()
}

/// docker's `HostConfig.SecurityOpt`: what differs from the defaults.
fn security_opt_strings(s: &crate::options::Security) -> Vec<String> {
    let mut out = Vec::new();
    if !s.no_new_privileges {
        out.push("no-new-privileges=false".to_string());
    }
    match s.seccomp {
        estiba_runtime::spec::Seccomp::Default => {}
        estiba_runtime::spec::Seccomp::Unconfined => out.push("seccomp=unconfined".into()),
        estiba_runtime::spec::Seccomp::Profile(_) => out.push("seccomp=<profile>".into()),
    }
    out
}

/// docker's lower-case state name (`State.Status`, `ps --filter status=`).
pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Created => "created",
        Status::Running => "running",
        Status::Restarting => "restarting",
        Status::Exited => "exited",
    }
}

fn since(t: Option<&str>) -> Option<u64> {
    let t = t?;
    let then =
        humantime::parse_rfc3339_weak(t.trim_end_matches('Z').split('.').next().unwrap_or(t))
            .ok()?;
    Some(
        SystemTime::now()
            .duration_since(then)
            .unwrap_or(Duration::ZERO)
            .as_secs(),
    )
}

fn duration_words(secs: u64) -> String {
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{secs} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", secs / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", secs / 3600),
        _ => format!("{} days", secs / 86400),
    }
}

/// docker's "About a minute ago" style for an RFC 3339 time.
pub fn human_since(t: Option<&str>) -> String {
    since(t).map_or_else(|| "N/A".into(), |s| format!("{} ago", duration_words(s)))
}

/// docker's STATUS column: "Up 3 seconds", "Exited (0) 2 minutes ago", "Created".
pub fn status_text(r: &ContainerRecord) -> String {
    let s = &r.state;
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => {
            let up = format!(
                "Up {}",
                duration_words(since(s.started_at.as_deref()).unwrap_or(0))
            );
            match &s.health {
                _ if s.paused => format!("{up} (Paused)"),
                Some(h) if h.status == "starting" => format!("{up} (health: starting)"),
                Some(h) => format!("{up} ({})", h.status),
                None => up,
            }
        }
        Status::Restarting => format!(
            "Restarting ({}) {}",
            s.exit_code,
            human_since(s.finished_at.as_deref())
        ),
        Status::Exited => format!(
            "Exited ({}) {}",
            s.exit_code,
            human_since(s.finished_at.as_deref())
        ),
    }
}

/// Parses docker's signal names and numbers: `KILL`, `SIGKILL`, `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || Error::Invalid {
        what: "signal",
        value: s.to_string(),
        why: "expected a name like TERM or a number".into(),
    };
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

/// What `exec` runs in a container.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    pub command: Vec<String>,
    /// `K=V` entries added to the container's environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub detach: bool,
    /// `-i`: the command reads this process's stdin.
    pub interactive: bool,
    /// `-t`: a pseudo-terminal for the command (stdin must be one).
    pub tty: bool,
}

impl Engine {
    /// Runs a command in a running container: its namespaces, cgroup,
    /// capabilities and seccomp profile, taken from the container's spec.
    pub fn exec(&self, wanted: &str, opts: &ExecOptions) -> Result<u8> {
        let r = self.find(wanted)?;
        if r.state.status != Status::Running || !alive(r.state.pid, None) {
            return Err(Error::NotRunning {
                name: r.name.clone(),
            });
        }
        let dirs = self.dirs(&r.id);
        let spec_path = dirs.bundle().join("config.json");
        let spec: Value = std::fs::read(&spec_path)
            .ctx("reading", &spec_path)
            .and_then(|d| {
                serde_json::from_slice(&d).map_err(|e| Error::Record(spec_path.clone(), e))
            })?;
        let mut process = spec["process"].clone();
        // The container's own root, seen through its init.
        let root = std::path::PathBuf::from(format!("/proc/{}/root", r.state.pid));
        if let Some(user) = &opts.user {
            let u = rootfs::resolve_user(&root, user)?;
            process["user"] =
                json!({ "uid": u.uid, "gid": u.gid, "additionalGids": u.additional_gids });
        }
        let mut env: Vec<String> = process["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for e in &opts.env {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            env.retain(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) != key);
            env.push(e.clone());
        }
        let runtime = self.runtime(&r)?;
        if runtime.name() == "libcontainer" {
            return Err(Error::Invalid {
                what: "exec into container",
                value: r.name.clone(),
                why: "the in-process libcontainer backend would run it without the container's seccomp profile; run the container with --runtime runc (the default for detached containers)".into(),
            });
        }
        let Some(first) = opts.command.first() else {
            return Err(Error::Invalid {
                what: "command",
                value: String::new(),
                why: "exec needs a command".into(),
            });
        };
        rootfs::check_command(&root, first, &env)?;
        process["env"] = json!(env);
        process["args"] = json!(opts.command);
        // With a terminal the runtime makes the container's pty and relays
        // it to our stdio, which must then be a terminal itself.
        process["terminal"] = json!(opts.tty);
        if let Some(w) = &opts.workdir {
            process["cwd"] = json!(w);
        }
        let path = dirs
            .root
            .join(format!("exec-{}.json", estiba_os::random_hex(6)));
        std::fs::write(&path, process.to_string()).ctx("writing", &path)?;
        // Who ran what inside is worth keeping: the audit reads root execs
        // from the journal.
        self.events.emit(
            crate::events::container(Action::ExecStart, &r)
                .with("execID", estiba_os::random_hex(16))
                .with("command", opts.command.join(" "))
                .with("user", process["user"]["uid"].to_string()),
        );
        let result = runtime
            .exec(&r.id, &path, opts.detach, opts.interactive || opts.tty)
            .map_err(Error::from);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("error.json"));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{parse_mounts, Security};
    use crate::record::{CreateOptions, State};

    #[test]
    fn signals_parse_as_docker_spells_them() {
        for s in ["KILL", "SIGKILL", "kill", "9"] {
            assert_eq!(parse_signal(s).unwrap(), Signal::SIGKILL, "{s}");
        }
        assert_eq!(parse_signal("usr1").unwrap(), Signal::SIGUSR1);
        for bad in ["", "SIGNOPE", "0", "99", "-1"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_as_docker_writes_them() {
        assert_eq!(duration_words(0), "Less than a second");
        assert_eq!(duration_words(1), "1 second");
        assert_eq!(duration_words(59), "59 seconds");
        assert_eq!(duration_words(90), "About a minute");
        assert_eq!(duration_words(600), "10 minutes");
        assert_eq!(duration_words(3700), "About an hour");
        assert_eq!(duration_words(3 * 86400), "3 days");
        assert_eq!(human_since(None), "N/A");
        assert_eq!(human_since(Some("not a time")), "N/A");
    }

    fn record(status: Status, exit_code: i32) -> ContainerRecord {
        ContainerRecord {
            id: "0".repeat(64),
            name: "web".into(),
            image: "busybox".into(),
            image_id: String::new(),
            created: String::new(),
            options: CreateOptions::default(),
            state: State {
                status,
                exit_code,
                finished_at: Some(now()),
                started_at: Some(now()),
                ..State::default()
            },
        }
    }

    #[test]
    fn the_status_column_follows_the_state() {
        assert_eq!(status_text(&record(Status::Created, 0)), "Created");
        assert!(status_text(&record(Status::Running, 0)).starts_with("Up "));
        assert!(status_text(&record(Status::Exited, 3)).starts_with("Exited (3) "));
        assert!(status_text(&record(Status::Restarting, 1)).starts_with("Restarting (1) "));
    }

    #[test]
    fn inspect_shows_typed_options_in_dockers_shapes() {
        let maps = estiba_net::ports::parse("127.0.0.1:8080-8081:80-81").unwrap();
        let bindings = port_bindings(&maps);
        assert_eq!(bindings["80/tcp"][0]["HostPort"], "8080");
        assert_eq!(bindings["81/tcp"][0]["HostIp"], "127.0.0.1");
        let any = port_bindings(&estiba_net::ports::parse("53/udp").unwrap());
        assert_eq!(any["53/udp"][0]["HostPort"], "");
        let mounts = parse_mounts(
            &["/srv:/data:ro".into(), "cache:/cache".into()],
            &["/run".into()],
            &[],
        )
        .unwrap();
        assert_eq!(binds(&mounts), ["/srv:/data:ro", "cache:/cache"]);
        assert!(security_opt_strings(&Security::default()).is_empty());
        let lowered = Security {
            no_new_privileges: false,
            seccomp: estiba_runtime::spec::Seccomp::Unconfined,
        };
        assert_eq!(
            security_opt_strings(&lowered),
            ["no-new-privileges=false", "seccomp=unconfined"]
        );
    }
}
