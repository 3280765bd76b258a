//! `probe`: a deliberately misbehaving transform for Sluice's sandbox and hot-reload tests.
//!
//! Config `mode` (applied to every event):
//! - `ok`: adds the header `probe-version` (`1`, or `2` when built with `--features v2`);
//! - `loop`: never returns; `oom`: allocates without bound; `trap`: panics; `error`: returns an
//!   error; `fail_on`: returns an error only for events whose `id` equals config `id`;
//! - `file`, `env`, `clock`, `random`: tries to read a file, the environment, the clock or
//!   random bytes, and reports what it got in the header `probe`;
//! - `sleep`: sleeps for an hour (`std::thread::sleep`); `amplify`: splits the event into
//!   config `n` outputs (default a million); `log`: logs config `n` messages (default 100 000)
//!   of config `bytes` bytes (default 10 000). With config `id`, these three and `trap`
//!   misbehave only on the event whose `id` equals it, and tag the others like `ok`.
//!
//! Config `fail_version`: when it equals this build's version (`1` or `2`), every event panics
//! (`probe: version N refuses every event`), whatever the mode; the empty smoke call passes.

use sluice_guest::{export_transform, Config, Event, Interest, Transform, Value};

pub const VERSION: &str = if cfg!(feature = "v2") { "2" } else { "1" };

pub struct Probe {
    mode: String,
    fail_id: i64,
    n: usize,
    bytes: usize,
    /// Panics on every event (this build's version equals config `fail_version`).
    refuse_all: bool,
}

impl Transform for Probe {
    fn init(config: &Config) -> Result<(Self, Interest), String> {
        let mode = config.get("mode").unwrap_or("ok").to_owned();
        let fail_id = config.get("id").and_then(|v| v.parse().ok()).unwrap_or(-1);
        let num = |key: &str, default: usize| {
            config
                .get(key)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let (n, bytes) = (
            num("n", if mode == "log" { 100_000 } else { 1_000_000 }),
            num("bytes", 10_000),
        );
        Ok((
            Probe {
                mode,
                fail_id,
                n,
                bytes,
                refuse_all: config.get("fail_version") == Some(VERSION),
            },
            Interest::columns(["id"]),
        ))
    }

    fn process(&mut self, event: &mut Event<'_>) -> Result<(), String> {
        if self.refuse_all {
            panic!("probe: version {VERSION} refuses every event");
        }
        let targeted = self.fail_id < 0 || event.get("id") == Some(&Value::Int(self.fail_id));
        match self.mode.as_str() {
            "sleep" | "amplify" | "log" | "trap" if !targeted => {
                event.add_header("probe-version", VERSION)
            }
            "sleep" => std::thread::sleep(std::time::Duration::from_secs(3600)),
            "amplify" => {
                for _ in 1..self.n {
                    event.split();
                }
                // The last output has an op, so that the event counts as edited.
                event.add_header("probe", "amplified");
            }
            "log" => {
                let message = "x".repeat(self.bytes);
                for _ in 0..self.n {
                    sluice_guest::log(sluice_guest::LogLevel::Info, &message);
                }
                event.add_header("probe-version", VERSION);
            }
            "ok" => event.add_header("probe-version", VERSION),
            "loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(3));
                }
            }
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" if self.fail_id < 0 => panic!("probe: trap requested"),
            "trap" => panic!("probe: trap requested on id {}", self.fail_id),
            "error" => return Err("probe: error requested".into()),
            "fail_on" => {
                if event.get("id") == Some(&Value::Int(self.fail_id)) {
                    return Err(format!("probe: refusing id {}", self.fail_id));
                }
            }
            "file" => {
                let got = match std::fs::read_to_string("/etc/passwd") {
                    Ok(s) => format!("read {} bytes", s.len()),
                    Err(e) => format!("error: {e}"),
                };
                event.add_header("probe", got);
            }
            "env" => {
                let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                event.add_header("probe", format!("{} vars {}", vars.len(), vars.join(",")));
            }
            "clock" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                event.add_header("probe", format!("{now}"));
            }
            "random" => {
                use std::hash::{BuildHasher, Hasher};
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u8(1);
                event.add_header("probe", format!("{}", h.finish()));
            }
            other => return Err(format!("unknown mode {other:?}")),
        }
        Ok(())
    }
}

export_transform!(Probe);

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_guest::testing::{Harness, TestEvent};

    #[test]
    fn ok_mode_tags_the_version_and_fail_on_fails() {
        let mut h = Harness::<Probe>::new(&[]).unwrap();
        let out = h
            .run(&[TestEvent::insert("s", "t", &[("id", Value::Int(1))])])
            .unwrap();
        assert_eq!(
            out[0].headers,
            vec![("probe-version".to_owned(), VERSION.as_bytes().to_vec())]
        );
        let mut h = Harness::<Probe>::new(&[("mode", "fail_on"), ("id", "2")]).unwrap();
        assert!(h
            .run(&[TestEvent::insert("s", "t", &[("id", Value::Int(2))])])
            .is_err());
    }
}
