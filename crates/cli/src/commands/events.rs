//! `estiba events`: the journal, filtered, printed as docker prints it, and
//! followed until `--until` (or forever).

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use estiba_events::{Filter, Start};

use super::Context;
use crate::cli::EventsArgs;

pub fn events(ctx: &Context, args: &EventsArgs) -> Result<u8> {
    let now = SystemTime::now();
    let mut filter = Filter::default();
    let time = |t: &Option<String>| {
        t.as_deref()
            .map(|t| estiba_events::time::parse(t, now))
            .transpose()
    };
    filter.since = time(&args.since)?;
    filter.until = time(&args.until)?;
    for f in &args.filters {
        filter.add(f)?;
    }
    let json = match args.format.as_deref() {
        None => false,
        Some("json" | "{{json .}}") => true,
        Some(other) => bail!("unknown --format {other:?}: json is the one format"),
    };
    let engine = ctx.engine()?;
    // Past events only when asked for; otherwise, like docker, what comes.
    let start = if filter.since.is_some() || filter.until.is_some() {
        Start::Beginning
    } else {
        Start::End
    };
    let mut follower = engine.events.follow(start)?;
    let mut out = std::io::stdout().lock();
    loop {
        let wait = filter.until.map_or(Duration::from_secs(1), |u| {
            u.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(1))
        });
        match follower.next_timeout(wait)? {
            Some(e) if filter.matches(&e) => {
                let line = if json {
                    serde_json::to_string(&e)?
                } else {
                    e.to_line()
                };
                // A reader that went away (`| head`) ends us quietly.
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    return Ok(0);
                }
            }
            // Caught up with the journal, or only later events coming: done
            // once past --until.
            Some(e) if filter.until.is_some_and(|u| e.at() > u) => return Ok(0),
            Some(_) => {}
            None if filter.past_until(SystemTime::now()) => return Ok(0),
            None => {}
        }
    }
}
