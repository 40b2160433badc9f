//! `estiba build`: a Containerfile turned into an OCI image, one layer per
//! filesystem-changing step (RUN, COPY, ADD), each step in a container with
//! the same isolation as `run`, and a layer cache keyed on the parent layers,
//! the instruction and the content it reads.

mod context;
mod diff;
pub mod parse;
mod steps;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use estiba_oci::{Digest, Reference};
use estiba_runtime::rootfs;
use estiba_store::Loaded;
use serde_json::{json, Value};

use crate::error::IoContext;
use crate::{Engine, Error, Result};
use context::Ignore;
use parse::{Command, Instruction, Kind};

#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub context: PathBuf,
    /// The Containerfile; default `Containerfile`, then `Dockerfile`, in the context.
    pub file: Option<PathBuf>,
    pub tags: Vec<String>,
    pub build_args: Vec<(String, String)>,
    pub target: Option<String>,
    /// `none` (default) or `host` for RUN steps.
    pub network: String,
}

/// One stage's image as it is being built.
#[derive(Clone, Debug, Default)]
struct Stage {
    name: Option<String>,
    /// (blob, diff id), bottom to top.
    layers: Vec<(Digest, Digest)>,
    /// The image config's `config` object.
    config: Value,
    history: Vec<Value>,
    args: BTreeMap<String, String>,
}

impl Stage {
    fn env(&self) -> Vec<String> {
        self.config["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lookup(&self, name: &str) -> Option<String> {
        let env = self.env();
        env.iter()
            .rev()
            .find_map(|e| {
                e.split_once('=')
                    .filter(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
            .or_else(|| self.args.get(name).cloned())
    }

    fn expand(&self, s: &str) -> String {
        parse::expand(s, &|n| self.lookup(n))
    }

    fn shell(&self) -> Vec<String> {
        self.config["Shell"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn command(&self, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => self
                .shell()
                .into_iter()
                .chain(std::iter::once(s.clone()))
                .collect(),
        }
    }

    fn set_env(&mut self, key: &str, value: &str) {
        let mut env: Vec<String> = self
            .env()
            .into_iter()
            .filter(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key)
            .collect();
        env.push(format!("{key}={value}"));
        self.config["Env"] = json!(env);
    }

    fn workdir(&self) -> String {
        self.config["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    fn history(&mut self, text: &str, empty_layer: bool) {
        self.history
            .push(json!({ "created": now(), "created_by": text, "empty_layer": empty_layer }));
    }
}

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

fn build_err(line: usize, message: impl Into<String>) -> Error {
    Error::Build {
        line,
        message: message.into(),
    }
}

/// docker's HEALTHCHECK config: durations in nanoseconds.
fn health_config(h: &parse::HealthSpec, line: usize) -> Result<Value> {
    let ns = |v: &Option<String>| -> Result<Value> {
        match v {
            None => Ok(Value::Null),
            Some(s) => humantime::parse_duration(s)
                .map(|d| json!(d.as_nanos() as u64))
                .map_err(|e| build_err(line, format!("bad duration {s:?}: {e}"))),
        }
    };
    let mut out = json!({ "Test": h.test });
    for (key, value) in [
        ("Interval", &h.interval),
        ("Timeout", &h.timeout),
        ("StartPeriod", &h.start_period),
    ] {
        let v = ns(value)?;
        if !v.is_null() {
            out[key] = v;
        }
    }
    if let Some(r) = h.retries {
        out["Retries"] = json!(r);
    }
    Ok(out)
}

impl Engine {
    /// Builds the image and names it with the tags; `out` gets progress lines.
    /// The calling thread moves to a private mount namespace (unshare
    /// affects only it): a threaded program calls this on a thread that
    /// ends afterwards, never on a pooled one.
    pub fn build(&self, opts: &BuildOptions, out: &mut dyn FnMut(&str)) -> Result<Loaded> {
        let context =
            fs::canonicalize(&opts.context).ctx("opening the build context", &opts.context)?;
        let file = match &opts.file {
            Some(f) => f.clone(),
            None => ["Containerfile", "Dockerfile"]
                .iter()
                .map(|n| context.join(n))
                .find(|p| p.exists())
                .unwrap_or_else(|| context.join("Containerfile")),
        };
        let text = fs::read_to_string(&file).ctx("reading", &file)?;
        let instructions = parse::parse(&text).map_err(|e| build_err(e.line, e.message))?;
        let names = opts
            .tags
            .iter()
            .map(|t| t.parse::<Reference>().map(|r| r.canonical()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(estiba_store::Error::from)?;
        let ignore = Ignore::load(&context);
        rootfs::private_mount_namespace()?;
        let work = self.data.join("build").join(estiba_os::random_hex(8));
        fs::create_dir_all(&work).ctx("creating", &work)?;
        let result = self.run_build(opts, &context, &ignore, &instructions, &work, out);
        let _ = estiba_os::remove_tree(&work);
        let stage = result?;
        self.commit_stage(&stage, names)
    }

    fn run_build(
        &self,
        opts: &BuildOptions,
        context: &Path,
        ignore: &Ignore,
        instructions: &[Instruction],
        work: &Path,
        out: &mut dyn FnMut(&str),
    ) -> Result<Stage> {
        let build_args: BTreeMap<String, String> = opts.build_args.iter().cloned().collect();
        let mut global_args = BTreeMap::new();
        let mut stages: Vec<Stage> = Vec::new();
        let mut stage: Option<Stage> = None;
        let total = instructions.len();
        for (n, ins) in instructions.iter().enumerate() {
            out(&format!("STEP {}/{total}: {}", n + 1, ins.text));
            if let Kind::From { image, alias } = &ins.kind {
                if let Some(done) = stage.take() {
                    let finished = opts.target.is_some() && done.name == opts.target;
                    stages.push(done);
                    if finished {
                        break;
                    }
                }
                let image = parse::expand(image, &|k| global_args.get(k).cloned());
                let mut next = self.base_stage(&image, &stages, ins.line)?;
                // As docker's builder does: an image without PATH gets the default.
                if next.lookup("PATH").is_none() {
                    let path = crate::prepare::DEFAULT_PATH.trim_start_matches("PATH=");
                    next.set_env("PATH", path);
                }
                next.name = alias.clone();
                next.args = global_args.clone();
                stage = Some(next);
                continue;
            }
            let Some(st) = stage.as_mut() else {
                if let Kind::Arg { name, default } = &ins.kind {
                    let value = build_args
                        .get(name)
                        .cloned()
                        .or_else(|| default.clone())
                        .unwrap_or_default();
                    global_args.insert(name.clone(), value);
                }
                continue;
            };
            self.step(
                st,
                ins,
                &stages,
                &build_args,
                opts,
                context,
                ignore,
                work,
                out,
            )?;
        }
        if let Some(done) = stage.take() {
            stages.push(done);
        }
        match &opts.target {
            Some(t) => stages
                .into_iter()
                .find(|s| s.name.as_deref() == Some(t.as_str()))
                .ok_or_else(|| build_err(1, format!("no stage named {t:?}"))),
            None => stages.pop().ok_or_else(|| build_err(1, "nothing to build")),
        }
    }

    /// A new stage from `scratch`, an earlier stage, or a local image.
    fn base_stage(&self, image: &str, stages: &[Stage], line: usize) -> Result<Stage> {
        if image == "scratch" {
            return Ok(Stage {
                config: json!({}),
                ..Stage::default()
            });
        }
        if let Some(s) = stages.iter().find(|s| s.name.as_deref() == Some(image)) {
            return Ok(s.clone());
        }
        let record = self
            .store
            .find_image(image)
            .map_err(|e| build_err(line, format!("FROM {image}: {e}")))?;
        let config: Value =
            serde_json::from_slice(&self.store.read_blob(&record.id)?).unwrap_or_default();
        Ok(Stage {
            layers: record
                .layer_blobs
                .iter()
                .cloned()
                .zip(record.diff_ids.iter().cloned())
                .collect(),
            config: if config["config"].is_object() {
                config["config"].clone()
            } else {
                json!({})
            },
            history: config["history"].as_array().cloned().unwrap_or_default(),
            ..Stage::default()
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        st: &mut Stage,
        ins: &Instruction,
        stages: &[Stage],
        build_args: &BTreeMap<String, String>,
        opts: &BuildOptions,
        context: &Path,
        ignore: &Ignore,
        work: &Path,
        out: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let line = ins.line;
        match &ins.kind {
            Kind::From { .. } => {}
            Kind::Arg { name, default } => {
                let value = build_args
                    .get(name)
                    .cloned()
                    .or_else(|| st.args.get(name).cloned())
                    .or_else(|| default.clone())
                    .unwrap_or_default();
                st.args.insert(name.clone(), value);
                st.history(&ins.text, true);
            }
            Kind::Env(pairs) => {
                for (k, v) in pairs {
                    let v = st.expand(v);
                    st.set_env(k, &v);
                }
                st.history(&ins.text, true);
            }
            Kind::Workdir(w) => {
                let w = st.expand(w);
                let dir = if w.starts_with('/') {
                    w
                } else {
                    format!("{}/{w}", st.workdir().trim_end_matches('/'))
                };
                st.config["WorkingDir"] = json!(dir);
                st.history(&ins.text, true);
            }
            Kind::User(u) => {
                st.config["User"] = json!(st.expand(u));
                st.history(&ins.text, true);
            }
            Kind::Cmd(c) => {
                st.config["Cmd"] = json!(st.command(c));
                st.history(&ins.text, true);
            }
            Kind::Entrypoint(c) => {
                st.config["Entrypoint"] = json!(st.command(c));
                st.history(&ins.text, true);
            }
            Kind::Expose(ports) => {
                for p in ports {
                    let p = st.expand(p);
                    let key = if p.contains('/') {
                        p
                    } else {
                        format!("{p}/tcp")
                    };
                    if !st.config["ExposedPorts"].is_object() {
                        st.config["ExposedPorts"] = json!({});
                    }
                    st.config["ExposedPorts"][key] = json!({});
                }
                st.history(&ins.text, true);
            }
            Kind::Label(pairs) => {
                if !st.config["Labels"].is_object() {
                    st.config["Labels"] = json!({});
                }
                for (k, v) in pairs {
                    st.config["Labels"][k.as_str()] = json!(st.expand(v));
                }
                st.history(&ins.text, true);
            }
            Kind::Volume(paths) => {
                if !st.config["Volumes"].is_object() {
                    st.config["Volumes"] = json!({});
                }
                for p in paths {
                    let p = st.expand(p);
                    st.config["Volumes"][p] = json!({});
                }
                st.history(&ins.text, true);
            }
            Kind::StopSignal(s) => {
                let s = st.expand(s);
                crate::parse_signal(&s).map_err(|e| build_err(line, e.to_string()))?;
                st.config["StopSignal"] = json!(s);
                st.history(&ins.text, true);
            }
            Kind::Shell(sh) => {
                st.config["Shell"] = json!(sh);
                st.history(&ins.text, true);
            }
            Kind::Healthcheck(h) => {
                st.config["Healthcheck"] = match h {
                    None => json!({ "Test": ["NONE"] }),
                    Some(h) => health_config(h, line)?,
                };
                st.history(&ins.text, true);
            }
            Kind::Run(c) => {
                let args = st.command(c);
                let mut env = st.env();
                if !env.iter().any(|e| e.starts_with("PATH=")) {
                    env.push(crate::prepare::DEFAULT_PATH.to_string());
                }
                for (k, v) in &st.args {
                    if !env.iter().any(|e| e.starts_with(&format!("{k}="))) {
                        env.push(format!("{k}={v}"));
                    }
                }
                let key = json!({ "run": args, "env": env, "user": st.config["User"], "workdir": st.workdir(), "network": opts.network });
                let (user, workdir, network) = (
                    st.config["User"].as_str().unwrap_or("").to_string(),
                    st.workdir(),
                    opts.network.clone(),
                );
                self.fs_step(st, ins, key, work, out, |rootfs, step_dir| {
                    self.run_step(
                        rootfs, step_dir, &args, &env, &user, &workdir, &network, line,
                    )
                })?;
                st.history(&ins.text, false);
            }
            Kind::Copy {
                from,
                chown,
                sources,
                dest,
            } => {
                self.copy_step(
                    st,
                    ins,
                    stages,
                    from.as_deref(),
                    chown.as_deref(),
                    sources,
                    dest,
                    false,
                    context,
                    ignore,
                    work,
                    out,
                )?;
            }
            Kind::Add {
                chown,
                sources,
                dest,
            } => {
                self.copy_step(
                    st,
                    ins,
                    stages,
                    None,
                    chown.as_deref(),
                    sources,
                    dest,
                    true,
                    context,
                    ignore,
                    work,
                    out,
                )?;
            }
        }
        Ok(())
    }
}
