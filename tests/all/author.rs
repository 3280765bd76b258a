//! The author's path and early transform checks: `sluice transform new` writes a crate whose
//! unit tests pass, which builds as a wasm component, and whose sample events `transform test`
//! masks; a broken transform stops `sluice run` before any MySQL connection and shows in
//! `sluice check`.

use std::process::Command;
use std::time::Instant;

use sluice_tests::*;

/// Runs `cmd` to the end; fails with its output unless it succeeds. Returns stdout.
fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output()?;
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{so}\nstderr:\n{se}",
        out.status
    );
    Ok(so)
}

#[test]
fn a_new_transform_crate_tests_builds_and_runs() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let t0 = Instant::now();
    let said = run_ok(
        Command::new(sluice_bin())
            .args(["transform", "new", "demo", "--path"])
            .arg(tmp.path()),
    )?;
    let dir = tmp.path().join("demo");
    for next in [
        "cargo test",
        "cargo build --release --target wasm32-wasip2",
        "sluice transform test target/wasm32-wasip2/release/demo.wasm --input samples/events.jsonl",
    ] {
        assert!(said.contains(next), "prints {next:?}:\n{said}");
    }
    let cargo_toml = std::fs::read_to_string(dir.join("Cargo.toml"))?;
    let sdk = root().join("guest-sdk").canonicalize()?;
    assert!(
        cargo_toml.contains(&format!(
            "sluice-guest = {{ path = \"{}\" }}",
            sdk.display()
        )),
        "{cargo_toml}"
    );

    // A second `new` of the same name refuses and leaves the crate alone.
    let again = Command::new(sluice_bin())
        .args(["transform", "new", "demo", "--path"])
        .arg(tmp.path())
        .output()?;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = Command::new(sluice_bin())
        .args(["transform", "new", "1bad.name", "--path"])
        .arg(tmp.path())
        .output()?;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a valid transform name"));

    // The workspace's lock file pins the SDK's dependencies to the versions already compiled in
    // the shared target directory (and needs no registry index); an author's crate resolves its own.
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock"))?;
    let target = root().join("target/authors");
    let cargo = |args: &[&str]| {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.args(args)
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET");
        c
    };
    let t1 = Instant::now();
    let tested = run_ok(&mut cargo(&["test", "--offline"]))?;
    assert!(tested.contains("test result: ok. 2 passed"), "{tested}");
    let t2 = Instant::now();
    let built_after = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    run_ok(&mut cargo(&[
        "build",
        "--offline",
        "--release",
        "--target",
        "wasm32-wasip2",
    ]))?;
    let t3 = Instant::now();
    let wasm = target.join("wasm32-wasip2/release/demo.wasm");
    assert!(
        std::fs::metadata(&wasm)?.modified()? >= built_after,
        "{} was built from this crate",
        wasm.display()
    );
    let (code, out, err) = transform_test(
        &[
            wasm.to_str().unwrap(),
            "--input",
            dir.join("samples/events.jsonl").to_str().unwrap(),
        ],
        "",
    )?;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let expected = [
        r#"{"kind":"insert","schema":"shop","table":"users","columnnames":["id","email","name"],"columnvalues":[1,"a***@example.com","Alice"],"oldkeys":{}}"#,
        r#"{"kind":"update","schema":"shop","table":"users","columnnames":["id","email","name"],"columnvalues":[1,"b***@example.com","Alice"],"oldkeys":{"keynames":["id","email","name"],"keyvalues":[1,"a***@example.com","Alice"]}}"#,
        r#"{"kind":"delete","schema":"shop","table":"users","columnnames":[],"columnvalues":[],"oldkeys":{"keynames":["id","email","name"],"keyvalues":[1,"b***@example.com","Alice"]}}"#,
    ]
    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    assert_eq!(lines, expected, "{out}");
    assert!(
        err.contains("\"transform\":\"demo\""),
        "named after the file stem: {err}"
    );
    eprintln!(
        "transform new: {:?}, cargo test: {:?}, wasm build: {:?}, transform test: {:?}",
        t1 - t0,
        t2 - t1,
        t3 - t2,
        t3.elapsed()
    );
    Ok(())
}

#[test]
fn a_broken_transform_stops_run_before_mysql_and_fails_check() -> anyhow::Result<()> {
    let state = tempfile::tempdir()?;
    let broken = state.path().join("broken.wasm");
    // Not a component: bytes that no WebAssembly parser accepts.
    std::fs::write(&broken, b"\x00asm\x0d\x00\x01\x00this is not a component")?;
    let (_, server_id) = unique("broken_tf");
    let mut cfg = SluiceConfig::new("t", None, server_id, state.path());
    // Nothing listens on port 1: a connection attempt would fail with a MySQL error instead.
    cfg.set("MYSQL_HOST", "127.0.0.1")
        .set("MYSQL_PORT", "1")
        .set("TRANSFORMS", broken.to_str().unwrap());

    let (code, _, err) = cfg.run_to_end(&["run"])?;
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("cannot start the transforms")
            && err.contains("broken.wasm is not a valid Sluice transform component"),
        "names the transform: {err}"
    );
    for mysql in ["127.0.0.1:1", "MySQL", "Connection refused"] {
        assert!(!err.contains(mysql), "no MySQL connection ({mysql}): {err}");
    }
    assert!(!cfg.position_file().exists(), "no position file is written");

    let (code, out, _) = cfg.run_to_end(&["check"])?;
    assert_ne!(code, 0);
    assert!(
        out.contains("[FAIL] transforms: broken: ")
            && out.contains("is not a valid Sluice transform component"),
        "{out}"
    );

    // A good transform next to it passes, with its name and hash.
    let probe = wasm("probe");
    cfg.set(
        "TRANSFORMS",
        &format!("{},{}", probe.display(), broken.display()),
    );
    let (_, out, _) = cfg.run_to_end(&["check"])?;
    assert!(
        out.contains("[PASS] transforms: probe: ") && out.contains("(sha256 "),
        "{out}"
    );
    assert!(out.contains("[FAIL] transforms: broken: "), "{out}");
    Ok(())
}

/// The Python tools `scripts/guest-tools.sh` installs.
fn python() -> std::path::PathBuf {
    let p = root().join(".work/guest-tools/py/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/guest-tools.sh",
        p.display()
    );
    p
}

#[test]
fn a_new_python_transform_tests_builds_and_runs() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let said = run_ok(
        Command::new(sluice_bin())
            .args(["transform", "new", "demo-py", "--lang", "python", "--path"])
            .arg(tmp.path()),
    )?;
    let dir = tmp.path().join("demo-py");
    for next in [
        "pytest",
        "python -m sluice.build demo_py.py -o demo_py.wasm",
        "sluice transform test demo_py.wasm --input samples/events.jsonl",
    ] {
        assert!(said.contains(next), "prints {next:?}:\n{said}");
    }
    // The native tests pass under plain CPython, finding the SDK through conftest.py.
    let tested = run_ok(
        Command::new(python())
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .current_dir(&dir),
    )?;
    assert!(tested.contains("2 passed"), "{tested}");
    // The printed build command, with this checkout's SDK.
    run_ok(
        Command::new(python())
            .args(["-m", "sluice.build", "demo_py.py", "-o", "demo_py.wasm"])
            .env("PYTHONPATH", root().join("guest-sdk/python"))
            .current_dir(&dir),
    )?;
    let wasm = dir.join("demo_py.wasm");
    let (code, out, err) = transform_test(
        &[
            wasm.to_str().unwrap(),
            "--input",
            dir.join("samples/events.jsonl").to_str().unwrap(),
        ],
        "",
    )?;
    assert_eq!(code, 0, "{err}");
    let emails: Vec<serde_json::Value> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let image = if v["kind"] == "delete" {
                &v["oldkeys"]["keyvalues"]
            } else {
                &v["columnvalues"]
            };
            image[1].clone()
        })
        .collect();
    // The Rust template's example, in Python: the same output.
    assert_eq!(
        emails,
        ["a***@example.com", "b***@example.com", "b***@example.com"].map(serde_json::Value::from),
        "{out}"
    );
    assert!(
        err.contains("\"transform\":\"demo_py\""),
        "named after the file stem: {err}"
    );
    Ok(())
}

#[test]
fn a_new_javascript_transform_tests_builds_and_runs() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let said = run_ok(
        Command::new(sluice_bin())
            .args(["transform", "new", "demo-js", "--lang", "js", "--path"])
            .arg(tmp.path()),
    )?;
    let dir = tmp.path().join("demo-js");
    for next in [
        "npm install",
        "npm test",
        "npm run build",
        "sluice transform test demo_js.wasm",
    ] {
        assert!(said.contains(next), "prints {next:?}:\n{said}");
    }
    // The printed steps: link the SDK (its tools are installed in guest-sdk/js by
    // scripts/guest-tools.sh), test natively, build.
    let npm = |args: &[&str]| {
        let mut c = Command::new("npm");
        c.args(args)
            .args(["--no-audit", "--no-fund"])
            .current_dir(&dir);
        c
    };
    run_ok(&mut npm(&["install", "--offline"]))?;
    let tested = run_ok(&mut npm(&["test"]))?;
    assert!(
        tested.contains("# pass 2") && tested.contains("# fail 0"),
        "{tested}"
    );
    run_ok(&mut npm(&["run", "build"]))?;
    let wasm = dir.join("demo_js.wasm");
    let (code, out, err) = transform_test(
        &[
            wasm.to_str().unwrap(),
            "--input",
            dir.join("samples/events.jsonl").to_str().unwrap(),
        ],
        "",
    )?;
    assert_eq!(code, 0, "{err}");
    let expected = [
        r#"{"kind":"insert","schema":"shop","table":"users","columnnames":["id","email","name"],"columnvalues":[1,"a***@example.com","Alice"],"oldkeys":{}}"#,
        r#"{"kind":"update","schema":"shop","table":"users","columnnames":["id","email","name"],"columnvalues":[1,"b***@example.com","Alice"],"oldkeys":{"keynames":["id","email","name"],"keyvalues":[1,"a***@example.com","Alice"]}}"#,
        r#"{"kind":"delete","schema":"shop","table":"users","columnnames":[],"columnvalues":[],"oldkeys":{"keynames":["id","email","name"],"keyvalues":[1,"b***@example.com","Alice"]}}"#,
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{err}");
    Ok(())
}
