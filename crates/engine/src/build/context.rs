//! The build context: `.dockerignore`, and turning COPY/ADD sources into a
//! tar stream that the safe unpacker then writes into the image.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// `.dockerignore` patterns; the last matching pattern wins, `!` re-includes.
#[derive(Debug, Default)]
pub struct Ignore {
    patterns: Vec<(bool, Vec<String>)>,
}

fn glob_segment(pattern: &str, name: &str) -> bool {
    fn rec(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| rec(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && rec(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && rec(rest, &n[1..]),
        }
    }
    rec(
        &pattern.chars().collect::<Vec<_>>(),
        &name.chars().collect::<Vec<_>>(),
    )
}

/// Matches path components against pattern components; `**` spans any number.
fn glob_path(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => true, // a directory pattern covers everything below it
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|i| glob_path(rest, &path[i..])),
        Some((p, rest)) => path
            .split_first()
            .is_some_and(|(n, tail)| glob_segment(p, n) && glob_path(rest, tail)),
    }
}

impl Ignore {
    pub fn load(context: &Path) -> Self {
        let text = fs::read_to_string(context.join(".dockerignore")).unwrap_or_default();
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (negate, p) = l.strip_prefix('!').map_or((false, l), |p| (true, p));
                let parts = p
                    .trim_start_matches('/')
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .map(str::to_string)
                    .collect();
                (negate, parts)
            })
            .collect();
        Ignore { patterns }
    }

    pub fn ignored(&self, rel: &Path) -> bool {
        let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
        let mut ignored = false;
        for (negate, pattern) in &self.patterns {
            if glob_path(pattern, &parts) {
                ignored = !negate;
            }
        }
        ignored
    }
}

/// A source path inside the context, refusing anything that leaves it.
pub fn context_path(context: &Path, source: &str, line: usize) -> Result<PathBuf> {
    let mut rel = PathBuf::new();
    for c in Path::new(source).components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !rel.pop() {
                    return Err(Error::Build {
                        line,
                        message: format!("{source:?} is outside the build context"),
                    });
                }
            }
            Component::Prefix(_) => {}
        }
    }
    Ok(context.join(rel))
}

/// The sources a COPY/ADD names: exact paths, or `*`/`?` patterns in the
/// last component. Ignored files do not exist for the build.
pub fn expand_sources(
    root: &Path,
    ignore: Option<&Ignore>,
    source: &str,
    line: usize,
) -> Result<Vec<PathBuf>> {
    let path = context_path(root, source, line)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let found: Vec<PathBuf> = if name.contains(['*', '?']) {
        let parent = path.parent().unwrap_or(root);
        let mut hits: Vec<PathBuf> = fs::read_dir(parent)
            .map(|d| {
                d.flatten()
                    .filter(|e| glob_segment(name, &e.file_name().to_string_lossy()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        hits.sort();
        hits
    } else if fs::symlink_metadata(&path).is_ok() {
        vec![path]
    } else {
        vec![]
    };
    let visible: Vec<PathBuf> = found
        .into_iter()
        .filter(|p| ignore.is_none_or(|i| !i.ignored(p.strip_prefix(root).unwrap_or(p))))
        .collect();
    if visible.is_empty() {
        return Err(Error::Build {
            line,
            message: format!("{source:?} not found in the build context"),
        });
    }
    Ok(visible)
}

/// Writes `src` into `builder` under `dest` (a path in the image), with the
/// given owner; directories are walked, symlinks kept as links.
pub fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    ignore: Option<&Ignore>,
    src: &Path,
    dest: &str,
    owner: (u32, u32),
) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(owner.0.into());
    header.set_gid(owner.1.into());
    header.set_mtime(meta.mtime().max(0) as u64);
    let name = dest.trim_start_matches('/');
    let name = if name.is_empty() { "." } else { name };
    if meta.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        builder.append_data(&mut header, format!("{name}/"), std::io::empty())?;
        let mut entries: Vec<_> = fs::read_dir(src)?.flatten().map(|e| e.path()).collect();
        entries.sort();
        for child in entries {
            if ignore.is_some_and(|i| i.ignored(child.strip_prefix(root).unwrap_or(&child))) {
                continue;
            }
            let child_name = child
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            append_tree(
                builder,
                root,
                ignore,
                &child,
                &format!("{}/{child_name}", dest.trim_end_matches('/')),
                owner,
            )?;
        }
    } else if meta.file_type().is_symlink() {
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, name, fs::read_link(src)?)?;
    } else if meta.is_file() {
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        builder.append_data(&mut header, name, fs::File::open(src)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(".dockerignore"),
            "# comment\n*.log\nsecret/\n**/tmp\n!keep.log\n",
        )
        .unwrap();
        let i = Ignore::load(dir.path());
        assert!(i.ignored(Path::new("a.log")));
        assert!(!i.ignored(Path::new("keep.log")));
        assert!(i.ignored(Path::new("secret/key")));
        assert!(i.ignored(Path::new("x/y/tmp/z")));
        assert!(!i.ignored(Path::new("src/main.rs")));
        assert!(context_path(dir.path(), "../etc/passwd", 3).is_err());
        assert_eq!(
            context_path(dir.path(), "/a/../b", 3).unwrap(),
            dir.path().join("b")
        );
    }
}
