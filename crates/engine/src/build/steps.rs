//! The steps that change the filesystem (RUN, COPY, ADD), the layer cache,
//! and committing the final image.

use std::fs;
use std::io::{BufWriter, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use estiba_oci::unpack::{self, Whiteouts};
use estiba_oci::{media, Digest, DigestReader};
use estiba_runtime::rootfs;
use estiba_runtime::spec::{self, Limits, RunConfig, Seccomp};
use estiba_store::Loaded;
use serde_json::{json, Value};

use super::context::{self, Ignore};
use super::parse::Instruction;
use super::{build_err, now, Stage};
use crate::error::IoContext;
use crate::{Engine, Error, Result};

/// A cached step: the layer it produced.
#[derive(serde::Serialize, serde::Deserialize)]
struct CacheEntry {
    blob: Digest,
    diff_id: Digest,
}

impl Engine {
    /// A step's upper dir is read into a layer and thrown away: nothing in
    /// it needs to reach the disk.
    fn step_overlay(&self) -> rootfs::Overlay {
        rootfs::Overlay {
            userxattr: self.host.rootless,
            volatile: true,
        }
    }

    fn cache_path(&self, key: &Digest) -> PathBuf {
        self.data.join("build-cache").join(key.hex())
    }

    /// Runs `apply` on a writable root filesystem over the stage's layers and
    /// records what changed as a new layer, unless the cache has it.
    pub(super) fn fs_step(
        &self,
        st: &mut Stage,
        ins: &Instruction,
        key_extra: Value,
        work: &Path,
        out: &mut dyn FnMut(&str),
        apply: impl FnOnce(&Path, &Path) -> Result<()>,
    ) -> Result<()> {
        let parents: Vec<String> = st.layers.iter().map(|(_, d)| d.to_string()).collect();
        let key = Digest::of(
            json!({ "parents": parents, "step": ins.text, "extra": key_extra })
                .to_string()
                .as_bytes(),
        );
        if let Ok(data) = fs::read(self.cache_path(&key)) {
            if let Ok(hit) = serde_json::from_slice::<CacheEntry>(&data) {
                if self.store.has_blob(&hit.blob)
                    && self.store.ensure_layer(&hit.blob, &hit.diff_id).is_ok()
                {
                    out(" --> Using cache");
                    st.layers.push((hit.blob, hit.diff_id));
                    return Ok(());
                }
            }
        }
        let step = work.join(estiba_os::random_hex(6));
        let (upper, overlay_work, root, empty) = (
            step.join("upper"),
            step.join("work"),
            step.join("rootfs"),
            step.join("empty"),
        );
        for d in [&upper, &overlay_work, &root, &empty] {
            fs::create_dir_all(d).ctx("creating", d)?;
        }
        let mut lowers = Vec::new();
        for (blob, diff_id) in &st.layers {
            lowers.push(self.store.ensure_layer(blob, diff_id)?);
        }
        if lowers.is_empty() {
            lowers.push(empty);
        }
        rootfs::mount_overlay(&lowers, &upper, &overlay_work, &root, self.step_overlay())?;
        let applied = apply(&root, &step);
        let _ = rootfs::unmount(&root);
        applied?;
        let layer_path = step.join("layer.tar");
        let file = fs::File::create(&layer_path).ctx("creating", &layer_path)?;
        let file = super::diff::write_layer(&upper, BufWriter::new(file))
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .ctx("writing the layer of", format!("line {}", ins.line))?;
        drop(file);
        let (blob, _) = self.store.put_blob(
            &mut fs::File::open(&layer_path).ctx("reading", &layer_path)?,
            None,
        )?;
        // An uncompressed layer's diff id is its digest.
        self.store.ensure_layer(&blob, &blob)?;
        let entry = serde_json::to_vec(&CacheEntry {
            blob: blob.clone(),
            diff_id: blob.clone(),
        })
        .map_err(|e| Error::Record(self.cache_path(&key), e))?;
        fs::create_dir_all(self.data.join("build-cache"))
            .ctx("creating", self.data.join("build-cache"))?;
        estiba_os::write_atomic(&self.cache_path(&key), &entry)?;
        let _ = estiba_os::remove_tree(&step);
        st.layers.push((blob.clone(), blob));
        Ok(())
    }

    /// Runs a RUN command in a container on the step's root filesystem, with
    /// the same isolation as `run`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_step(
        &self,
        root: &Path,
        step: &Path,
        args: &[String],
        env: &[String],
        user: &str,
        workdir: &str,
        network: &str,
        line: usize,
    ) -> Result<()> {
        let user = rootfs::resolve_user(root, user)?;
        let id = format!("build-{}", estiba_os::random_hex(8));
        let cfg = RunConfig {
            id: id.clone(),
            rootfs: root.to_path_buf(),
            args: args.to_vec(),
            env: env.to_vec(),
            cwd: workdir.to_string(),
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.additional_gids,
            hostname: "estiba-build".into(),
            read_only: false,
            cap_add: vec![],
            cap_drop: vec![],
            no_new_privileges: true,
            seccomp: Seccomp::Default,
            privileged: false,
            limits: Limits::default(),
            shm_size: None,
            sysctls: Default::default(),
            devices: Vec::new(),
            host_namespaces: Default::default(),
            terminal: false,
            network: crate::options::parse_builtin_network(network)?,
            join: vec![],
            mounts: vec![],
            tmpfs: vec![],
            etc_files: vec![],
        };
        // WORKDIR exists before the command runs, as docker makes it.
        let cwd = root.join(workdir.trim_start_matches('/'));
        if !cwd.exists() {
            fs::create_dir_all(&cwd).ctx("creating WORKDIR", &cwd)?;
        }
        let (spec, _) = spec::build(&cfg, &self.host, estiba_store::host_arch())?;
        let bundle = step.join("bundle");
        fs::create_dir_all(&bundle).ctx("creating", &bundle)?;
        let data =
            serde_json::to_vec(&spec).map_err(|e| Error::Record(bundle.join("config.json"), e))?;
        fs::write(bundle.join("config.json"), data).ctx("writing", bundle.join("config.json"))?;
        let runtime = estiba_runtime::backend::select(None, &self.host, &self.run.join("runtime"))?;
        let code = runtime
            .run(&id, &bundle, &|_| {})
            .map_err(|e| build_err(line, format!("RUN failed: {e}")))?;
        if code != 0 {
            return Err(build_err(
                line,
                format!("RUN {} returned a non-zero code: {code}", args.join(" ")),
            ));
        }
        Ok(())
    }

    /// COPY and ADD: the sources become a tar stream (owned by `--chown` or
    /// root), which the safe unpacker writes into the image. ADD unpacks
    /// local archives instead of copying them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy_step(
        &self,
        st: &mut Stage,
        ins: &Instruction,
        stages: &[Stage],
        from: Option<&str>,
        chown: Option<&str>,
        sources: &[String],
        dest: &str,
        add: bool,
        context: &Path,
        ignore: &Ignore,
        work: &Path,
        out: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let line = ins.line;
        let dest = st.expand(dest);
        let dest = if dest.starts_with('/') {
            dest
        } else {
            format!("{}/{dest}", st.workdir().trim_end_matches('/'))
        };
        let sources: Vec<String> = sources.iter().map(|s| st.expand(s)).collect();
        // The source tree: the context, or another stage's (or image's) filesystem.
        let from_root = match from {
            None => None,
            Some(name) => {
                let other = match stages.iter().find(|s| s.name.as_deref() == Some(name)) {
                    Some(s) => s.clone(),
                    None => self.base_stage(name, stages, line)?,
                };
                Some(self.mount_stage(&other, work)?)
            }
        };
        let result = (|| -> Result<()> {
            let (root, ignore) = match &from_root {
                Some(p) => (p.clone(), None),
                None => (context.to_path_buf(), Some(ignore)),
            };
            let mut files = Vec::new();
            for s in &sources {
                files.extend(context::expand_sources(&root, ignore, s, line)?);
            }
            let into_dir = dest.ends_with('/') || files.len() > 1;
            // Owner ids are resolved against the image's own /etc/passwd at apply time.
            let tar_path = work.join(format!("copy-{}.tar", estiba_os::random_hex(6)));
            let write_tar = |owner: (u32, u32)| -> Result<()> {
                let f = fs::File::create(&tar_path).ctx("creating", &tar_path)?;
                let mut b = tar::Builder::new(BufWriter::new(f));
                for file in &files {
                    let meta = fs::symlink_metadata(file).ctx("reading", file)?;
                    let base = file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let target = if meta.is_dir() {
                        dest.clone()
                    } else if into_dir {
                        format!("{}/{base}", dest.trim_end_matches('/'))
                    } else {
                        dest.clone()
                    };
                    if add && meta.is_file() && is_archive(file) {
                        continue;
                    }
                    context::append_tree(&mut b, &root, ignore, file, &target, owner)
                        .ctx("reading", file)?;
                }
                b.into_inner()
                    .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                    .ctx("writing", &tar_path)?;
                Ok(())
            };
            // The cache key covers the content, names and modes read.
            write_tar((0, 0))?;
            let mut content =
                DigestReader::new(fs::File::open(&tar_path).ctx("reading", &tar_path)?);
            std::io::copy(&mut content, &mut std::io::sink()).ctx("reading", &tar_path)?;
            let mut archives = Vec::new();
            for file in files.iter().filter(|f| add && f.is_file() && is_archive(f)) {
                let mut r = DigestReader::new(fs::File::open(file).ctx("reading", file)?);
                std::io::copy(&mut r, &mut std::io::sink()).ctx("reading", file)?;
                archives.push(r.digest().to_string());
            }
            let key = json!({ "content": content.digest().to_string(), "archives": archives, "chown": chown });
            let archive_files: Vec<PathBuf> = files
                .iter()
                .filter(|f| add && f.is_file() && is_archive(f))
                .cloned()
                .collect();
            self.fs_step(st, ins, key, work, out, |rootfs, _| {
                if let Some(spec) = chown {
                    let u = rootfs::resolve_user(rootfs, spec)?;
                    write_tar((u.uid, u.gid))?;
                }
                let opts = unpack::Options {
                    whiteouts: Whiteouts::Apply,
                    rootless: self.host.rootless,
                };
                unpack::unpack(
                    fs::File::open(&tar_path).ctx("reading", &tar_path)?,
                    rootfs,
                    opts,
                )?;
                for archive in &archive_files {
                    // ADD: unpack a local archive into the destination directory.
                    let (_dir_fd, dir) = open_in_root_creating(rootfs, &dest)?;
                    unpack::unpack(fs::File::open(archive).ctx("reading", archive)?, &dir, opts)?;
                }
                Ok(())
            })?;
            let _ = fs::remove_file(&tar_path);
            Ok(())
        })();
        if let Some(p) = from_root {
            let _ = rootfs::unmount(&p);
        }
        result?;
        st.history(&ins.text, false);
        Ok(())
    }

    /// Mounts a stage's layers read-only, for COPY --from.
    fn mount_stage(&self, stage: &Stage, work: &Path) -> Result<PathBuf> {
        let dir = work.join(format!("from-{}", estiba_os::random_hex(6)));
        let (upper, overlay_work, root, empty) = (
            dir.join("upper"),
            dir.join("work"),
            dir.join("rootfs"),
            dir.join("empty"),
        );
        for d in [&upper, &overlay_work, &root, &empty] {
            fs::create_dir_all(d).ctx("creating", d)?;
        }
        let mut lowers = vec![empty];
        for (blob, diff_id) in &stage.layers {
            lowers.push(self.store.ensure_layer(blob, diff_id)?);
        }
        rootfs::mount_overlay(&lowers, &upper, &overlay_work, &root, self.step_overlay())?;
        Ok(root)
    }

    /// Writes the stage as an image and names it.
    pub(super) fn commit_stage(&self, st: &Stage, names: Vec<String>) -> Result<Loaded> {
        let config = json!({
            "created": now(),
            "architecture": estiba_store::host_arch(),
            "os": "linux",
            "config": st.config,
            "rootfs": { "type": "layers", "diff_ids": st.layers.iter().map(|(_, d)| d.to_string()).collect::<Vec<_>>() },
            "history": st.history,
        });
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| Error::Record("image config".into(), e))?;
        let config_digest = self.store.put_blob_bytes(&config_bytes)?;
        let mut layers = Vec::new();
        for (blob, _) in &st.layers {
            let size = fs::metadata(self.store.blob_path(blob))
                .ctx("reading", self.store.blob_path(blob))?
                .len();
            let mut head = [0u8; 4];
            let n = fs::File::open(self.store.blob_path(blob))
                .and_then(|mut f| f.read(&mut head))
                .unwrap_or(0);
            let media_type = estiba_oci::Compression::detect(&head[..n]).layer_media_type();
            layers
                .push(json!({ "mediaType": media_type, "digest": blob.to_string(), "size": size }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": { "mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config_bytes.len() },
            "layers": layers,
        });
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| Error::Record("manifest".into(), e))?;
        let manifest_digest = self.store.put_blob_bytes(&manifest_bytes)?;
        Ok(self.store.commit_image(manifest_digest, names)?)
    }
}

/// A local file ADD unpacks: tar, gzip or zstd (by its magic bytes).
fn is_archive(path: &Path) -> bool {
    let mut head = [0u8; 262];
    let n = fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let compressed = estiba_oci::Compression::detect(&head[..n]) != estiba_oci::Compression::None;
    compressed || (n >= 262 && &head[257..262] == b"ustar")
}

/// The directory `path` inside `root` (created if missing), resolved within
/// it: an open fd, and the `/proc/self/fd` path that names it while it is open.
fn open_in_root_creating(root: &Path, path: &str) -> Result<(std::os::fd::OwnedFd, PathBuf)> {
    // Creating through the safe unpacker: an empty directory entry.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    let name = format!("{}/", path.trim_matches('/'));
    if name != "/" {
        b.append_data(&mut h, &name, std::io::empty())
            .ctx("creating", path)?;
    }
    let data = b.into_inner().ctx("creating", path)?;
    let opts = unpack::Options {
        whiteouts: Whiteouts::Apply,
        rootless: false,
    };
    unpack::unpack(&data[..], root, opts)?;
    let dir = rustix::fs::open(
        root,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ctx("opening", root)?;
    let how = rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS;
    let target = rustix::fs::openat2(
        &dir,
        path.trim_start_matches('/'),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        how,
    )
    .ctx("opening", path)?;
    let p = PathBuf::from(format!("/proc/self/fd/{}", target.as_raw_fd()));
    Ok((target, p))
}
