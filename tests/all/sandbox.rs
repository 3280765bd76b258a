//! Sandbox limits that a guest used to be able to bypass: a guest that sleeps (a host call that
//! blocks, where the CPU deadline cannot fire), a guest that returns a million outputs for one
//! event (host work and memory outside the deadline), a guest that logs in a loop, and a
//! component with several memories (each within `memory_mb`, together above it). Each is
//! stopped by its limit, Sluice carries on, and its memory stays bounded.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sluice_tests::*;

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Three misbehaving probes in one pipeline, each under `on_error = "skip"`: the first sleeps
/// for an hour on id 2, the second returns a million outputs for id 3 (a 64 KiB row), the third
/// logs 100 000 messages of 10 KB for id 4. Rows 1, 4 and 5 come out, quickly, and the host's
/// peak RSS stays far below what the million copies would take (64 GB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_amplifying_and_chatty_guests_are_stopped_and_sluice_carries_on(
) -> anyhow::Result<()> {
    let probe = wasm("probe");
    // The chatty guest copies 1 GB of messages across the boundary in one call: on a loaded
    // 2-core machine that alone can take more than 500 ms, so its CPU deadline is wider (what
    // it tests is the log limit, not the deadline).
    let stage = |name: &str, mode: &str, id: u32, cpu_ms: u32| {
        format!(
            "[[transforms]]\npath = {probe:?}\nname = {name:?}\non_error = \"skip\"\nmemory_mb = 256\ncpu_ms = {cpu_ms}\n[transforms.config]\nmode = {mode:?}\nid = \"{id}\"\n\n"
        )
    };
    let (mut p, mut sluice) = TestPipeline::new("sandbox")
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY, body MEDIUMTEXT)")
        .config(
            stage("sleeper", "sleep", 2, 500)
                + &stage("amplifier", "amplify", 3, 500)
                + &stage("chatty", "log", 4, 10_000),
        )
        .start()
        .await?;
    let pid = sluice.child.id();
    let rss_before = status_kib(pid, "VmRSS");

    let started = Instant::now();
    for id in 1..=5 {
        p.sql(format!(
            "INSERT INTO {{t}} VALUES ({id}, REPEAT('x', 65536))"
        ))
        .await?;
    }
    let ids = |s: &Sluice| -> Vec<i64> {
        s.stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["columnvalues"][0].as_i64().unwrap())
            .collect()
    };
    let done = wait_until(Duration::from_secs(60), || ids(&sluice).len() >= 3);
    let elapsed = started.elapsed();
    assert!(done, "{}", sluice.stderr_text());
    // Let a late (wrong) output show up if there were one.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ids(&sluice), vec![1, 4, 5], "{}", sluice.stderr_text());
    let (rss, hwm) = (status_kib(pid, "VmRSS"), status_kib(pid, "VmHWM"));
    println!(
        "5 rows through sleep/amplify/log probes in {elapsed:?}; host RSS {} MiB before, {} MiB after, peak {} MiB",
        rss_before >> 10,
        rss >> 10,
        hwm >> 10
    );
    let log = sluice.stderr_text();
    assert!(
        log.contains("may not block") && log.contains("std::thread::sleep"),
        "the sleeper was stopped for sleeping: {log}"
    );
    assert!(
        log.contains("over the limit of 1000 outputs per input event"),
        "the amplifier was stopped by the output limit: {log}"
    );
    assert!(
        log.contains("log messages suppressed") && log.contains("\"suppressed\":99900"),
        "the chatty guest kept 100 messages and the rest were counted: {log}"
    );
    let kept = log.matches(&"x".repeat(4096)).count();
    assert_eq!(kept, 100, "100 messages kept, each cut to 4096 bytes");
    assert!(
        !log.contains(&"x".repeat(4097)),
        "no message over 4096 bytes"
    );
    // An hour's sleep is stopped within the CPU deadline, not after an hour; the whole run
    // (three guests, each retried one event at a time) takes seconds.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    // A million copies of a 64 KiB event would be 64 GB; the host stays near its baseline.
    assert!(hwm < 1 << 20, "peak RSS {} MiB", hwm >> 10);
    // Sluice carries on: still running, and a later row goes through.
    p.sql("INSERT INTO {t} VALUES (6, 'y')").await?;
    assert!(
        wait_until(Duration::from_secs(30), || ids(&sluice).contains(&6)),
        "{}",
        sluice.stderr_text()
    );
    sluice.signal(15);
    assert_eq!(sluice.wait(Duration::from_secs(30))?, 0);
    Ok(())
}

/// The sleeping guest under `halt`, through `sluice transform test`: an error exit within
/// seconds, naming the sleep.
#[test]
fn a_sleeping_guest_under_halt_fails_fast_with_the_reason() {
    let probe = wasm("probe");
    let input = r#"{"kind":"insert","schema":"s","table":"t","columnnames":["id"],"columnvalues":[1],"oldkeys":{}}"#;
    let started = Instant::now();
    let (code, out, err) =
        transform_test(&[probe.to_str().unwrap(), "--set", "mode=sleep"], input).unwrap();
    let elapsed = started.elapsed();
    println!("halted a sleeping guest in {elapsed:?}");
    assert_ne!(code, 0, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("may not block"), "{err}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

/// The probe component with `extra` more core instances appended, each of a module that
/// defines one memory of `mib` MiB (none when `mib` is 0): a real Rust guest that owns
/// several memories.
fn with_extra_memories(extra: usize, mib: u64) -> Vec<u8> {
    let mut bytes = std::fs::read(wasm("probe")).unwrap();
    // Core modules defined so far (at the top level): the new ones are numbered after them.
    let mut modules = 0u32;
    let mut depth = 0i32;
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            wasmparser::Payload::ModuleSection { .. } => {
                if depth == 0 {
                    modules += 1;
                }
                depth += 1;
            }
            wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            _ => {}
        }
    }
    let mut memory_module = wasm_encoder::Module::new();
    let mut memories = wasm_encoder::MemorySection::new();
    memories.memory(wasm_encoder::MemoryType {
        minimum: mib * 16, // 64 KiB pages
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    if mib > 0 {
        memory_module.section(&memories);
    }
    let mut tail = wasm_encoder::Component::new();
    for k in 0..extra {
        tail.section(&wasm_encoder::ModuleSection(&memory_module));
        let mut instance = wasm_encoder::InstanceSection::new();
        instance.instantiate(
            modules + k as u32,
            Vec::<(&str, wasm_encoder::ModuleArg)>::new(),
        );
        tail.section(&instance);
    }
    // Drop the tail's preamble (magic and version): its sections follow the probe's.
    bytes.extend_from_slice(&tail.finish()[8..]);
    bytes
}

#[test]
fn a_component_with_several_memories_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = r#"{"kind":"insert","schema":"s","table":"t","columnnames":["id"],"columnvalues":[1],"oldkeys":{}}"#;
    // Three more memories of 48 MiB: each within the 64 MiB cap, together 144 MiB over it.
    let path = dir.path().join("memories.wasm");
    std::fs::write(&path, with_extra_memories(3, 48)).unwrap();
    let (code, out, err) = transform_test(&[path.to_str().unwrap()], input).unwrap();
    assert_ne!(code, 0, "refused: {out}");
    assert!(
        err.contains("structure limits") && err.contains("at most 1 linear memory"),
        "{err}"
    );
    // The on-demand allocator (the fallback when the pool cannot reserve memory) refuses it
    // too, through the store's limits.
    let out = std::process::Command::new(sluice_bin())
        .args(["transform", "test", path.to_str().unwrap()])
        .env("SLUICE_WASM_POOLING", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused on demand too");
    assert!(
        err.contains("on-demand allocation")
            && err.contains("memory count too high")
            && err.contains("at most 1 linear memory"),
        "{err}"
    );
    // The same construction with an extra instance that has no memory is a working
    // transform: the refusal is about the memories, not about how the file was made.
    let path = dir.path().join("none.wasm");
    std::fs::write(&path, with_extra_memories(1, 0)).unwrap();
    let (code, out, err) = transform_test(&[path.to_str().unwrap()], input).unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"columnvalues\":[1]"), "{out}");
}

/// Open inotify instances of a process.
fn inotify_instances(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|l| l.to_string_lossy().contains("inotify"))
                .count()
        })
        .unwrap_or(0)
}

/// Hot reload across pipeline restarts: a rejected `.wasm` left on disk does not stop the
/// restarted pipeline (it keeps the version that was running), the restarts share one file
/// watcher, and a fresh start with the rejected file fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_keep_the_validated_version_and_one_watcher() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let live = dir.path().join("probe.wasm");
    std::fs::copy(wasm("probe"), &live)?;
    // A user of its own, so that killing its connections touches no other test.
    let (mut p, sluice) = TestPipeline::new("reload_restart")
        .own_user()
        .setup("CREATE TABLE {t} (id INT PRIMARY KEY)")
        .env("TRANSFORMS", live.to_str().unwrap())
        .arg("--watch")
        .start()
        .await?;
    let pid = sluice.child.id();
    let ids = |s: &Sluice| -> Vec<i64> {
        s.stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["columnvalues"][0].as_i64().unwrap())
            .collect()
    };
    p.sql("INSERT INTO {t} VALUES (1)").await?;
    assert!(wait_until(Duration::from_secs(30), || ids(&sluice) == [1]));

    // A broken version is rejected by the watcher, and stays on disk.
    let tmp = dir.path().join("probe.wasm.tmp");
    std::fs::write(&tmp, b"\0asm this is not a component")?;
    std::fs::rename(&tmp, &live)?;
    assert!(
        wait_until(Duration::from_secs(30), || sluice
            .log_contains("rejected the new version")),
        "{}",
        sluice.stderr_text()
    );

    // Three pipeline restarts: the server drops the replica connection each time.
    for round in 0..3 {
        let restarts = sluice
            .stderr_text()
            .matches("keeping the version that was running")
            .count();
        let conns: Vec<(u64, String)> =
            p.db.exec(
                "SELECT ID, COMMAND FROM information_schema.PROCESSLIST WHERE USER = ?",
                (&p.user,),
            )
            .await?;
        let dump = conns
            .iter()
            .find(|(_, c)| c.contains("Binlog Dump"))
            .map(|(i, _)| *i);
        let Some(dump) = dump else {
            panic!("round {round}: no binlog dump thread: {conns:?}");
        };
        p.sql(format!("KILL {dump}")).await?;
        assert!(
            wait_until(Duration::from_secs(60), || sluice
                .stderr_text()
                .matches("keeping the version that was running")
                .count()
                > restarts),
            "round {round}: the restart kept the running version: {}",
            sluice.stderr_text()
        );
        let id = 2 + round as i64;
        p.sql(format!("INSERT INTO {{t}} VALUES ({id})")).await?;
        assert!(
            wait_until(Duration::from_secs(60), || ids(&sluice).contains(&id)),
            "round {round}: row {id} after the restart: {}",
            sluice.stderr_text()
        );
    }
    let watchers = inotify_instances(pid);
    println!("after 3 pipeline restarts: {watchers} inotify instance(s)");
    assert_eq!(watchers, 1, "one file watcher for the whole process");
    assert!(sluice.stop()? == 0);

    // A fresh process has no validated version: the broken file stops it at once.
    let (code, _, err) = p.cfg.run_to_end(&["run"])?;
    assert_ne!(code, 0);
    assert!(err.contains("not a valid Sluice transform"), "{err}");
    Ok(())
}
