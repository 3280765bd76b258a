//! `probe`: a deliberately misbehaving transform for Sluice's sandbox and hot-reload tests.
//!
//! Config `mode` (applied to every event):
//! - `ok`: adds the header `probe-version` (`1`, or `2` when built with `--features v2`);
//! - `loop`: never returns; `oom`: allocates without bound; `trap`: panics; `error`: returns an
//!   error; `fail_on`: returns an error only for events whose `id` equals config `id`;
//! - `file`, `env`, `clock`, `random`: tries to read a file, the environment, the clock or
//!   random bytes, and reports what it got in the header `probe`.

use sluice_guest::{export_transform, Config, Event, Interest, Transform, Value};

pub const VERSION: &str = if cfg!(feature = "v2") { "2" } else { "1" };

pub struct Probe {
    mode: String,
    fail_id: i64,
}

impl Transform for Probe {
    fn init(config: &Config) -> Result<(Self, Interest), String> {
        let mode = config.get("mode").unwrap_or("ok").to_owned();
        let fail_id = config.get("id").and_then(|v| v.parse().ok()).unwrap_or(-1);
        Ok((Probe { mode, fail_id }, Interest::columns(["id"])))
    }

    fn process(&mut self, event: &mut Event<'_>) -> Result<(), String> {
        match self.mode.as_str() {
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
            "trap" => panic!("probe: trap requested"),
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
