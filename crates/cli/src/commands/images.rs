//! Image commands: images, load, import, save, rmi, tag, inspect, prune.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _, Result};
use estiba_store::ImageRecord;
use serde_json::json;

use super::Context;
use crate::cli::{
    ImagesArgs, ImportArgs, InspectArgs, LoadArgs, PruneArgs, RmiArgs, SaveArgs, TagArgs,
};

/// Docker's size format: SI units, three significant digits ("4.26MB").
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let formatted = if value >= 100.0 || unit == 0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    let trimmed = if formatted.contains('.') {
        formatted
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        formatted
    };
    format!("{trimmed}{}", units[unit])
}

/// Docker's "About a minute ago" style.
pub fn human_since(rfc3339: Option<&str>) -> String {
    let Some(then) = rfc3339.and_then(|t| {
        humantime::parse_rfc3339_weak(t.trim_end_matches('Z').split('.').next().unwrap_or(t)).ok()
    }) else {
        return "N/A".into();
    };
    let secs = SystemTime::now()
        .duration_since(then)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (n, unit) = match secs {
        0..=59 => {
            return if secs <= 1 {
                "Less than a second ago".into()
            } else {
                format!("{secs} seconds ago")
            }
        }
        60..=119 => return "About a minute ago".into(),
        120..=3599 => (secs / 60, "minutes"),
        3600..=7199 => return "About an hour ago".into(),
        7200..=172_799 => (secs / 3600, "hours"),
        172_800..=1_209_599 => (secs / 86400, "days"),
        1_209_600..=5_183_999 => (secs / 604_800, "weeks"),
        5_184_000..=63_071_999 => (secs / 2_592_000, "months"),
        _ => (secs / 31_536_000, "years"),
    };
    format!("{n} {unit} ago")
}

/// Aligns columns the way docker's tabwriter does: three spaces between.
pub fn tabulate<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One row per name (or one `<none>` row for a dangling image).
fn rows(image: &ImageRecord) -> Vec<(String, String)> {
    if image.names.is_empty() {
        return vec![("<none>".into(), "<none>".into())];
    }
    image
        .names
        .iter()
        .map(|n| match n.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
            _ => (n.clone(), "<none>".into()),
        })
        .collect()
}

pub fn list(ctx: &Context, args: &ImagesArgs) -> Result<u8> {
    let images = ctx.store()?.images()?;
    let mut out = std::io::stdout().lock();
    let id_of = |i: &ImageRecord| {
        if args.no_trunc {
            i.id.to_string()
        } else {
            i.id.short().to_string()
        }
    };
    if args.quiet {
        let mut seen = BTreeSet::new();
        for i in &images {
            if seen.insert(i.id.clone()) {
                writeln!(out, "{}", id_of(i))?;
            }
        }
        return Ok(0);
    }
    match args.format.as_deref() {
        None | Some("table") => {
            let mut table =
                vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"].map(String::from)];
            for i in &images {
                for (repo, tag) in rows(i) {
                    table.push([
                        repo,
                        tag,
                        id_of(i),
                        human_since(i.created.as_deref()),
                        human_size(i.size),
                    ]);
                }
            }
            write!(out, "{}", tabulate(&table))?;
        }
        Some("json") => {
            for i in &images {
                for (repo, tag) in rows(i) {
                    let row = json!({
                        "ID": id_of(i),
                        "Repository": repo,
                        "Tag": tag,
                        "Digest": i.manifest.to_string(),
                        "CreatedAt": i.created,
                        "CreatedSince": human_since(i.created.as_deref()),
                        "Size": human_size(i.size),
                        "VirtualSize": human_size(i.size),
                    });
                    writeln!(out, "{row}")?;
                }
            }
        }
        Some(other) => bail!("unsupported --format {other:?}: use table or json"),
    }
    Ok(0)
}

pub fn load(ctx: &Context, args: &LoadArgs) -> Result<u8> {
    let store = ctx.store()?;
    let progress = crate::progress::Progress::new(args.quiet);
    let loaded = store.load(&args.input, &mut |line| progress.line(line));
    progress.finish();
    let loaded = loaded.with_context(|| format!("loading {}", args.input.display()))?;
    for image in loaded {
        if image.names.is_empty() {
            println!("Loaded image ID: {}", image.id);
        }
        for name in image.names {
            println!("Loaded image: {name}");
        }
    }
    Ok(0)
}

pub fn import(ctx: &Context, args: &ImportArgs) -> Result<u8> {
    let loaded = ctx
        .store()?
        .import(&args.tarball, args.reference.as_deref())
        .with_context(|| format!("importing {}", args.tarball.display()))?;
    println!("{}", loaded.id);
    Ok(0)
}

pub fn save(ctx: &Context, args: &SaveArgs) -> Result<u8> {
    let store = ctx.store()?;
    let images = args
        .images
        .iter()
        .map(|name| {
            let record = store.find_image(name)?;
            let label = record
                .names
                .iter()
                .find(|n| n.starts_with(name.as_str()))
                .cloned();
            Ok((record, label))
        })
        .collect::<Result<Vec<_>>>()?;
    match &args.output {
        Some(path) => store.save(&images, path)?,
        None => {
            if std::io::stdout().is_terminal() {
                bail!("refusing to write an archive to a terminal: use -o FILE or redirect standard output");
            }
            std::fs::create_dir_all(&ctx.paths.run)?;
            let tmp = ctx
                .paths
                .run
                .join(format!("save-{}.tar", estiba_os::random_hex(8)));
            let result = store
                .save(&images, &tmp)
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    let mut f = std::fs::File::open(&tmp)?;
                    std::io::copy(&mut f, &mut std::io::stdout().lock())?;
                    Ok(())
                });
            let _ = std::fs::remove_file(&tmp);
            result?;
        }
    }
    Ok(0)
}

pub fn remove(ctx: &Context, args: &RmiArgs) -> Result<u8> {
    let store = ctx.store()?;
    let mut failed = false;
    for image in &args.images {
        match store.remove_image(image, args.force) {
            Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub fn tag(ctx: &Context, args: &TagArgs) -> Result<u8> {
    ctx.store()?.tag(&args.source, &args.target)?;
    Ok(0)
}

pub fn inspect(ctx: &Context, args: &InspectArgs) -> Result<u8> {
    println!(
        "{}",
        serde_json::to_string_pretty(&inspect_values(ctx, &args.images)?)?
    );
    Ok(0)
}

/// docker's inspect shape for images.
pub fn inspect_values(ctx: &Context, names: &[String]) -> Result<Vec<serde_json::Value>> {
    let store = ctx.store()?;
    let mut out = Vec::new();
    for name in names {
        let record = store.find_image(name)?;
        let config: serde_json::Value = serde_json::from_slice(&store.read_blob(&record.id)?)?;
        out.push(json!({
            "Id": record.id.to_string(),
            "Digest": record.manifest.to_string(),
            "RepoTags": record.names,
            "Created": record.created,
            "Architecture": config["architecture"],
            "Os": config["os"],
            "Author": config["author"],
            "Size": record.size,
            "Config": config["config"],
            "RootFS": { "Type": "layers", "Layers": record.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>() },
            "History": config["history"],
        }));
    }
    Ok(out)
}

pub fn prune(ctx: &Context, _args: &PruneArgs) -> Result<u8> {
    let pruned = ctx.store()?.prune()?;
    for id in &pruned.images {
        println!("Deleted Images:\ndeleted: {id}");
    }
    println!("Total reclaimed space: {}", human_size(pruned.reclaimed));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_300_000), "12.3MB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(150_000_000), "150MB");
    }
}
