//! Naming a process for good: a pid alone can be reused once the process
//! exits, but a pid with its start time cannot.

/// A process, by pid and start time (clock ticks since boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: i32,
    pub started: u64,
}

impl ProcessId {
    /// This process.
    pub fn this() -> ProcessId {
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        ProcessId {
            pid,
            started: start_time(pid).unwrap_or(0),
        }
    }

    /// The process that has `pid` now, if any.
    pub fn of(pid: i32) -> Option<ProcessId> {
        Some(ProcessId {
            pid,
            started: start_time(pid)?,
        })
    }

    /// True while this very process runs (a zombie has ended).
    pub fn alive(&self) -> bool {
        self.pid > 0 && live_start_time(self.pid) == Some(self.started)
    }

    /// `pid started`, the form pid files hold.
    pub fn to_line(self) -> String {
        format!("{} {}\n", self.pid, self.started)
    }

    /// Parses [`ProcessId::to_line`]'s form.
    pub fn parse(text: &str) -> Option<ProcessId> {
        let (pid, started) = text.trim().split_once(' ')?;
        Some(ProcessId {
            pid: pid.parse().ok()?,
            started: started.parse().ok()?,
        })
    }
}

/// When process `pid` started (field 22 of /proc/PID/stat, in clock ticks
/// since boot); None if there is no such process. It stays the same across
/// exec, unlike the command line.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields after the command: state is field 3, starttime field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Like [`start_time`], but None for a process that has exited and waits
/// to be reaped (a zombie).
pub fn live_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::this();
        assert!(me.alive());
        assert_eq!(ProcessId::parse(&me.to_line()), Some(me));
        let reused = ProcessId {
            started: me.started + 1,
            ..me
        };
        assert!(!reused.alive());
        assert!(ProcessId::parse("12").is_none());
    }
}
