//! What the harness reads of processes and of the machine: CPU seconds and peak RSS from
//! `/proc`, the ids of the services that share the machine's two cores with Sluice (mariadbd,
//! the broker), the load average, and the time. The services' CPU is recorded with every run
//! because Sluice, MariaDB and the broker compete for the same cores.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_contract::format::{civil_from_days, days_from_civil};

/// Clock ticks per second of `/proc/PID/stat`'s times.
fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        output("getconf", &["CLK_TCK"])
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU seconds (user + system, all threads) that `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_of(&format!("/proc/{pid}/stat"))
}

/// CPU seconds the harness itself has used so far.
pub fn self_cpu_seconds() -> f64 {
    cpu_of("/proc/self/stat").unwrap_or(0.0)
}

fn cpu_of(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// The peak resident set (VmHWM) of `pid`, in MiB.
pub fn vm_hwm_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A process's id from a pid file, if that process still runs.
pub fn pid_from_file(path: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// The CPU seconds of the server and the broker, to subtract at the end of a run.
#[derive(Debug, Clone, Copy)]
pub struct ServiceCpu {
    mariadbd: Option<(u32, f64)>,
    broker: Option<(u32, f64)>,
}

/// The ids of mariadbd (from its `pid_file`) and of the broker (`.work/tansu/broker.pid`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Services {
    pub mariadbd: Option<u32>,
    pub broker: Option<u32>,
}

impl Services {
    pub fn start(&self) -> ServiceCpu {
        let at = |p: Option<u32>| p.and_then(|p| cpu_seconds(p).map(|c| (p, c)));
        ServiceCpu {
            mariadbd: at(self.mariadbd),
            broker: at(self.broker),
        }
    }
}

impl ServiceCpu {
    /// (mariadbd, broker) CPU seconds since [`Services::start`].
    pub fn since(&self) -> (Option<f64>, Option<f64>) {
        let d = |s: Option<(u32, f64)>| s.and_then(|(p, c0)| cpu_seconds(p).map(|c| c - c0));
        (d(self.mariadbd), d(self.broker))
    }
}

/// Runs a command and returns its standard output, if it ran and succeeded.
pub fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// Seconds since the epoch, as a float.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for `secs` since the epoch.
pub fn utc(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let r = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

/// `YYYYMMDDTHHMMSSZ`, for directory and topic names.
pub fn utc_stamp() -> String {
    utc(unix_now() as i64)
        .replace(['-', ':'], "")
        .replace(' ', "T")
        + "Z"
}

/// An RFC 3339 UTC timestamp as Sluice's JSON logs write it (`2026-12-06T10:00:00.123456Z`),
/// to seconds since the epoch.
pub fn parse_rfc3339_utc(s: &str) -> Option<f64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let mo: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    let mut tp = time.split(':');
    let h: f64 = tp.next()?.parse().ok()?;
    let mi: f64 = tp.next()?.parse().ok()?;
    let sec: f64 = tp.next()?.parse().ok()?;
    Some(days_from_civil(y, mo, d) as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + sec)
}

/// The machine and its load at one moment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    pub unix: f64,
    pub load_average: String,
}

impl Snapshot {
    pub fn now() -> Snapshot {
        Snapshot {
            unix: unix_now(),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_795_309_132), "2026-11-22 00:58:52");
        let t = parse_rfc3339_utc("2026-11-22T00:58:52.250000Z").unwrap();
        assert!((t - 1_795_309_132.25).abs() < 1e-6);
    }
}
