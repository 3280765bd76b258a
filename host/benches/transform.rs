//! Transform cost: filter+mask as WebAssembly through the host, against the same logic in
//! native Rust, in the same run, on synthetic 8-column events.
//!
//! Run: `scripts/build-transforms.sh && cargo bench -p sluice --bench transform`
//! Prints ns per event and events/s at call batch sizes 1, 16, 128 and 1024, then filter+mask
//! per language (native Rust, and the Rust, Python and JavaScript components) at batch 128. The time is the
//! transform stage's own: the events it publishes are freed after the clock stops (in the
//! pipeline the sink frees them), on both the wasm and the native side.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::event::{ChangeEvent, Kind, SourcePosition, TableMeta, Value};
use sluice::transform::{build_chain, TransformEngine, TransformSpec};

const EVENTS: usize = 100_000;

fn events(n: usize) -> Vec<ChangeEvent> {
    let meta = Arc::new(TableMeta {
        schema: "shop".into(),
        table: "orders".into(),
        columns: [
            "id",
            "customer",
            "email",
            "status",
            "total",
            "created_at",
            "qty",
            "note",
        ]
        .map(String::from)
        .to_vec(),
        primary_key: vec![0],
    });
    let file: Arc<str> = Arc::from("mysql-bin.000001");
    (0..n)
        .map(|i| ChangeEvent {
            kind: Kind::Insert,
            meta: meta.clone(),
            after: vec![
                Value::Int(i as i64),
                Value::Text(format!("customer {i}")),
                Value::Text(format!("user{i}@example.com")),
                Value::Text(if i % 2 == 0 { "paid" } else { "new" }.into()),
                Value::Decimal(format!("{}.{:02}", i % 1000, i % 100)),
                Value::DateTime {
                    year: 2024,
                    month: 1,
                    day: 31,
                    hour: 12,
                    minute: 0,
                    second: 0,
                    micros: 0,
                    fsp: 0,
                },
                Value::Int((i % 7) as i64),
                Value::Text("a short note".into()),
            ],
            before: Vec::new(),
            position: SourcePosition {
                file: file.clone(),
                pos: 4 + i as u64 * 100,
                row: 0,
                gtid: None,
                snapshot: false,
                cursor: None,
                held: None,
            },
            timestamp: 0,
            route: None,
        })
        .collect()
}

/// The same filter (status == "paid") and mask (SHA-256 of email) in native Rust.
fn native(batch: Vec<ChangeEvent>) -> Vec<ChangeEvent> {
    let status = 3;
    let email = 2;
    batch
        .into_iter()
        .filter(|e| matches!(&e.after[status], Value::Text(s) if s == "paid"))
        .map(|mut e| {
            if let Value::Text(s) = &e.after[email] {
                e.after[email] = Value::Text(sluice_transform_mask::hash_hex("", s.as_bytes()));
            }
            e
        })
        .collect()
}

fn best<F: FnMut() -> Duration>(mut f: F) -> Duration {
    (0..3).map(|_| f()).min().expect("three runs")
}

/// filter+mask in each language at the default call size, in this run: the same examples in
/// Rust, Python (`transforms/python`) and JavaScript (`transforms/js`), and native Rust.
fn languages(
    root: &std::path::Path,
    engine: &TransformEngine,
    input: &[ChangeEvent],
    filter: &TransformSpec,
    mask: &TransformSpec,
) {
    println!();
    println!("filter+mask per language, call batch 128, {EVENTS} events (best of 3)");
    println!(
        "{:>22} | {:>10} | {:>10} | {:>8}",
        "", "ns/event", "events/s", "× native"
    );
    let native_t = best(|| {
        let batches: Vec<Vec<ChangeEvent>> = input.chunks(128).map(|c| c.to_vec()).collect();
        let start = Instant::now();
        let kept: Vec<_> = batches.into_iter().map(native).collect();
        let t = start.elapsed();
        drop(kept);
        t
    });
    let ns = |d: Duration| d.as_nanos() as f64 / EVENTS as f64;
    println!(
        "{:>22} | {:>10.0} | {:>10.0} | {:>8}",
        "native Rust",
        ns(native_t),
        1e9 / ns(native_t),
        "1.00"
    );
    for (label, dir) in [
        ("Rust (wasm)", ""),
        ("Python (componentize-py)", "py/"),
        ("JavaScript (componentize-js)", "js/"),
    ] {
        let path = |n: &str| root.join("target/wasm").join(format!("{dir}{n}.wasm"));
        if !path("filter").exists() || !path("mask").exists() {
            println!("{label:>22} | missing: run scripts/build-transforms.sh");
            continue;
        }
        let (mut f, mut m) = (filter.clone(), mask.clone());
        f.path = path("filter");
        m.path = path("mask");
        let loaded = Instant::now();
        let mut chain = build_chain(engine, &[f, m]).expect("chain");
        let load = loaded.elapsed();
        let t = best(|| {
            let batches: Vec<Vec<ChangeEvent>> = input.chunks(128).map(|c| c.to_vec()).collect();
            let start = Instant::now();
            let kept: Vec<_> = batches
                .into_iter()
                .map(|b| chain.process(b).expect("transform"))
                .collect();
            let t = start.elapsed();
            assert_eq!(kept.iter().map(Vec::len).sum::<usize>(), EVENTS / 2);
            t
        });
        println!(
            "{:>22} | {:>10.0} | {:>10.0} | {:>8.2}   (load: {load:.1?})",
            label,
            ns(t),
            1e9 / ns(t),
            ns(t) / ns(native_t)
        );
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = |n: &str| root.join("target/wasm").join(format!("{n}.wasm"));
    if !wasm("filter").exists() {
        eprintln!("target/wasm/filter.wasm is missing: run scripts/build-transforms.sh first");
        std::process::exit(2);
    }
    let mut filter = TransformSpec::from_path(&wasm("filter"));
    filter.config = vec![
        ("column".into(), "status".into()),
        ("op".into(), "==".into()),
        ("value".into(), "paid".into()),
    ];
    let mut mask = TransformSpec::from_path(&wasm("mask"));
    mask.config = vec![("columns".into(), "email".into())];
    let engine = TransformEngine::new(Some(root.join("target/wasm/cache"))).expect("engine");
    let input = events(EVENTS);

    // Where the time goes, at the default call size (128).
    println!("one transform at a time, call batch 128 (best of 3)");
    println!("{:>34} | {:>12}", "transform", "wasm ns/ev");
    let mut keep_all = filter.clone();
    keep_all.config = vec![
        ("column".into(), "status".into()),
        ("op".into(), "!=".into()),
        ("value".into(), "zzz".into()),
    ];
    // SLUICE_BENCH_ONLY=N runs only row N of this table (for `perf record`), then stops.
    let only: Option<usize> = std::env::var("SLUICE_BENCH_ONLY")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut by_table = filter.clone();
    by_table.config = vec![("drop_tables".into(), "shop.audit".into())];
    for (row, (label, spec)) in [
        ("filter by table (no values cross)", &by_table),
        ("filter, keeps all (crossing only)", &keep_all),
        ("filter, keeps half", &filter),
        ("mask email (SHA-256)", &mask),
    ]
    .into_iter()
    .enumerate()
    {
        if only.is_some_and(|o| o != row) {
            continue;
        }
        let mut chain = build_chain(&engine, std::slice::from_ref(spec)).expect("chain");
        let t = best(|| {
            let batches: Vec<Vec<ChangeEvent>> = input.chunks(128).map(|c| c.to_vec()).collect();
            let mut kept = Vec::with_capacity(batches.len());
            let start = Instant::now();
            for b in batches {
                kept.push(chain.process(b).expect("transform"));
            }
            let t = start.elapsed();
            drop(kept);
            t
        });
        println!(
            "{:>34} | {:>12.0}",
            label,
            t.as_nanos() as f64 / EVENTS as f64
        );
    }
    if only.is_some() {
        return;
    }
    languages(&root, &engine, &input, &filter, &mask);
    println!();
    println!("filter+mask over {EVENTS} 8-column events (best of 3; ~50% pass the filter)");
    println!(
        "{:>6} | {:>12} | {:>12} | {:>12} | {:>12} | {:>6}",
        "batch", "wasm ns/ev", "wasm ev/s", "native ns/ev", "native ev/s", "ratio"
    );
    println!("{}", "-".repeat(76));
    for size in [1usize, 16, 128, 1024] {
        let mut chain = build_chain(&engine, &[filter.clone(), mask.clone()])
            .expect("chain")
            .with_call_events(size);
        let wasm_t = best(|| {
            let batches: Vec<Vec<ChangeEvent>> = input.chunks(size).map(|c| c.to_vec()).collect();
            let mut kept = Vec::with_capacity(batches.len());
            let start = Instant::now();
            for b in batches {
                kept.push(chain.process(b).expect("transform"));
            }
            let t = start.elapsed();
            assert_eq!(kept.iter().map(Vec::len).sum::<usize>(), EVENTS / 2);
            t
        });
        let native_t = best(|| {
            let batches: Vec<Vec<ChangeEvent>> = input.chunks(size).map(|c| c.to_vec()).collect();
            let mut kept = Vec::with_capacity(batches.len());
            let start = Instant::now();
            for b in batches {
                kept.push(native(b));
            }
            let t = start.elapsed();
            assert_eq!(kept.iter().map(Vec::len).sum::<usize>(), EVENTS / 2);
            t
        });
        let ns = |d: Duration| d.as_nanos() as f64 / EVENTS as f64;
        println!(
            "{:>6} | {:>12.0} | {:>12.0} | {:>12.0} | {:>12.0} | {:>5.2}x",
            size,
            ns(wasm_t),
            1e9 / ns(wasm_t),
            ns(native_t),
            1e9 / ns(native_t),
            ns(wasm_t) / ns(native_t)
        );
    }
}
