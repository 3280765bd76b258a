//! Unit tests of the configuration loader: the contract's variables, their defaults and errors.
use super::*;
use std::collections::HashMap;

fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load(None, &move |k| map.get(k).cloned())
}

const BASE: [(&str, &str); 5] = [
    ("MYSQL_HOST", "db"),
    ("MYSQL_USER", "u"),
    ("MYSQL_PASSWORD", "secret-pw"),
    ("MYSQL_DATABASE", "shop"),
    ("MYSQL_TABLE", "orders"),
];

#[test]
fn contract_defaults() {
    let c = load(&BASE).unwrap();
    assert_eq!(c.mysql.port, 3306);
    assert_eq!(c.mysql.schema, "shop");
    assert_eq!(c.mysql.snapshot_host, "db");
    assert_eq!(c.snapshot.batch_size, 1000);
    assert!(!c.snapshot.initial && !c.snapshot.force);
    assert_eq!(c.state_dir, PathBuf::from("state"));
    assert!(c.kafka.is_none());
    assert_eq!(c.mysql.server_id, DEFAULT_SERVER_ID);
    assert_eq!(c.position_file_name(), "binlog_position_shop_orders.json");
    assert!(!format!("{c:?}").contains("secret-pw"));
}

#[test]
fn kafka_needs_a_topic_and_accepts_the_quix_alias() {
    let mut vars = BASE.to_vec();
    vars.push(("Quix__Broker__Address", "k:9092"));
    let err = load(&vars).unwrap_err();
    assert!(err.to_string().contains("output"), "{err}");
    vars.push(("output", "cdc"));
    vars.push(("KAFKA_KEY", "primary_key"));
    let k = load(&vars).unwrap().kafka.unwrap();
    assert_eq!(
        (k.brokers.as_str(), k.topic.as_str(), k.key),
        ("k:9092", "cdc", KeyMode::PrimaryKey)
    );
}

#[test]
fn transforms_from_env_keep_file_settings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "[[transforms]]\npath = \"m.wasm\"\non_error = \"skip\"\ncpu_ms = 50\n[transforms.config]\ncolumns = [\"a\", \"b\"]\n",
    )
    .unwrap();
    let map: HashMap<String, String> = BASE
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let c = Config::load(Some(&file), &|k| map.get(k).cloned()).unwrap();
    assert_eq!(c.transforms.len(), 1);
    assert_eq!(
        c.transforms[0].config,
        vec![("columns".to_owned(), "a,b".to_owned())]
    );
    let mut map2 = map.clone();
    map2.insert("TRANSFORMS".into(), "f.wasm, m.wasm".into());
    let c = Config::load(Some(&file), &|k| map2.get(k).cloned()).unwrap();
    let names: Vec<_> = c
        .transforms
        .iter()
        .map(|t| (t.name.as_str(), t.on_error))
        .collect();
    assert_eq!(
        names,
        vec![("f", FailurePolicy::Halt), ("m", FailurePolicy::Skip)]
    );
    assert_eq!(
        c.transforms[1].limits.cpu,
        std::time::Duration::from_millis(50)
    );
}

#[test]
fn kafka_file_settings_and_secrets_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "[kafka]\nbrokers = \"k:9092\"\ntopic = \"cdc\"\non_oversize = \"dead_letter\"\n\
         dead_letter_topic = \"cdc.big\"\n[kafka.producer]\n\"sasl.password\" = \"hunter2\"\n\
         \"ssl.key.password\" = \"kp\"\n\"security.protocol\" = \"SASL_SSL\"\n\
         [pipeline]\nmax_inflight_bytes = 1000\nmax_batch_bytes = 4096\n",
    )
    .unwrap();
    let map: HashMap<String, String> = BASE
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let c = Config::load(Some(&file), &|k| map.get(k).cloned()).unwrap();
    let k = c.kafka.as_ref().unwrap();
    assert_eq!(k.on_oversize, OversizePolicy::DeadLetter);
    assert_eq!(k.dead_letter_topic.as_deref(), Some("cdc.big"));
    assert_eq!(c.pipeline.max_inflight_bytes, 1000);
    assert_eq!(c.pipeline.max_batch_bytes, 4096);
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("\"kp\""),
        "{shown}"
    );
    assert!(shown.contains("SASL_SSL"), "{shown}");

    // dead_letter without a topic is refused.
    std::fs::write(
        &file,
        "[kafka]\nbrokers = \"k:9092\"\ntopic = \"cdc\"\non_oversize = \"dead_letter\"\n",
    )
    .unwrap();
    let err = Config::load(Some(&file), &|k| map.get(k).cloned()).unwrap_err();
    assert!(err.to_string().contains("dead_letter_topic"), "{err}");
    // Delivery reports for failures only would leave every batch unacknowledged: refused.
    std::fs::write(
        &file,
        "[kafka]\nbrokers = \"k:9092\"\ntopic = \"cdc\"\n[kafka.producer]\n\"delivery.report.only.error\" = \"true\"\n",
    )
    .unwrap();
    let err = Config::load(Some(&file), &|k| map.get(k).cloned()).unwrap_err();
    assert!(
        err.to_string().contains("delivery.report.only.error")
            && err.to_string().contains("position"),
        "{err}"
    );
    // Defaults.
    let c = load(&BASE).unwrap();
    assert_eq!(c.pipeline.max_inflight_bytes, DEFAULT_MAX_INFLIGHT_BYTES);
    assert_eq!(c.pipeline.max_batch_bytes, 8 << 20);
    assert_eq!(c.pipeline.shutdown_timeout_ms, 10_000);
}

#[test]
fn several_tables_and_bad_values() {
    let mut vars = BASE.to_vec();
    vars[4] = ("MYSQL_TABLE", "orders, customers");
    let c = load(&vars).unwrap();
    assert_eq!(c.mysql.tables, vec!["orders", "customers"]);
    let name = c.position_file_name();
    assert!(
        name.starts_with("binlog_position_shop_orders_customers_") && name.ends_with(".json"),
        "{name}"
    );
    vars.push(("MYSQL_PORT", "x"));
    assert!(load(&vars).unwrap_err().to_string().contains("MYSQL_PORT"));
    let mut vars = BASE.to_vec();
    let c = load(&vars).unwrap();
    assert_eq!(c.mysql.on_table_reset, crate::source::ResetPolicy::Stop);
    assert!(!c.mysql.accept_fk_cascades);
    let mut bad = vars.clone();
    bad.push(("ON_TABLE_RESET", "ignore"));
    let err = load(&bad).unwrap_err().to_string();
    assert!(
        err.contains("ON_TABLE_RESET") && err.contains("stop"),
        "{err}"
    );
    let mut ok = vars.clone();
    ok.push(("ACCEPT_FK_CASCADES", "true"));
    assert!(load(&ok).unwrap().mysql.accept_fk_cascades);
    vars.push(("INITIAL_SNAPSHOT", "maybe"));
    assert!(load(&vars)
        .unwrap_err()
        .to_string()
        .contains("INITIAL_SNAPSHOT"));
    let err = load(&BASE[..4]).unwrap_err();
    assert!(err.to_string().contains("MYSQL_TABLE"), "{err}");
}

fn load_file(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, text).unwrap();
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load(Some(&file), &|k| map.get(k).cloned())
}

#[test]
fn errors_name_the_toml_key_when_the_value_came_from_the_file() {
    let err = load_file("[mysql]\non_table_reset = \"ignore\"\n", &BASE)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mysql.on_table_reset") && !err.contains("ON_TABLE_RESET"),
        "{err}"
    );
    // The variable overrides the file, and its name is the one reported.
    let mut vars = BASE.to_vec();
    vars.push(("ON_TABLE_RESET", "bogus"));
    let err = load_file("[mysql]\non_table_reset = \"stop\"\n", &vars)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ON_TABLE_RESET") && err.contains("bogus"),
        "{err}"
    );
    let err = load_file("[mysql]\nserver_id = 0\n", &BASE)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mysql.server_id"), "{err}");
    let err = load_file("[snapshot]\nbatch_size = 0\n", &BASE)
        .unwrap_err()
        .to_string();
    assert!(err.contains("snapshot.batch_size"), "{err}");
    // From the environment, the variable is named, as before.
    let mut vars = BASE.to_vec();
    vars.push(("SNAPSHOT_BATCH_SIZE", "0"));
    let err = load(&vars).unwrap_err().to_string();
    assert!(err.contains("SNAPSHOT_BATCH_SIZE"), "{err}");
    let mut vars = BASE.to_vec();
    vars.push(("MYSQL_SERVER_ID", "0"));
    let err = load(&vars).unwrap_err().to_string();
    assert!(err.contains("MYSQL_SERVER_ID"), "{err}");
}

#[test]
fn zero_pipeline_sizes_are_refused() {
    for key in [
        "max_batch_rows",
        "max_batch_bytes",
        "channel_capacity",
        "max_inflight_bytes",
    ] {
        let err = load_file(&format!("[pipeline]\n{key} = 0\n"), &BASE)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pipeline.{key}")) && err.contains("positive"),
            "{err}"
        );
    }
    // Zero intervals stay legitimate (checkpoint every time, no shutdown wait).
    let c = load_file(
        "[pipeline]\ncheckpoint_interval_ms = 0\nshutdown_timeout_ms = 0\nmax_batch_rows = 1\n",
        &BASE,
    )
    .unwrap();
    assert_eq!(c.pipeline.checkpoint_interval_ms, 0);
    assert_eq!(c.pipeline.max_batch_rows, 1);
    assert_eq!(c.pipeline.channel_capacity, 64);
}

#[test]
fn env_overrides_file_and_blank_env_is_unset() {
    let file = "[mysql]\nhost = \"filehost\"\nport = 3307\nuser = \"fu\"\npassword = \"\"\n\
                database = \"fdb\"\ntables = [\"a\", \"b\"]\nserver_id = 7\n\
                accept_fk_cascades = true\n[snapshot]\ninitial = true\nbatch_size = 5\n\
                [state]\ndir = \"/tmp/st\"\n";
    let c = load_file(file, &[("MYSQL_HOST", "  "), ("MYSQL_PORT", "3308")]).unwrap();
    assert_eq!(
        (c.mysql.host.as_str(), c.mysql.port, c.mysql.user.as_str()),
        ("filehost", 3308, "fu")
    );
    assert_eq!(c.mysql.password, "");
    assert_eq!(c.mysql.tables, vec!["a", "b"]);
    assert_eq!(c.mysql.schema, "fdb");
    assert_eq!(c.mysql.snapshot_host, "filehost");
    assert_eq!(c.mysql.server_id, 7);
    assert!(c.mysql.accept_fk_cascades && c.snapshot.initial && !c.snapshot.force);
    assert_eq!(c.snapshot.batch_size, 5);
    assert_eq!(c.state_dir, PathBuf::from("/tmp/st"));
    assert_eq!(
        c.transform_cache_dir,
        PathBuf::from("/tmp/st/transform-cache")
    );
    let c = load_file(
        file,
        &[
            ("ACCEPT_FK_CASCADES", "off"),
            ("INITIAL_SNAPSHOT", "no"),
            ("Quix__State__Dir", "/tmp/env"),
            ("MYSQL_TABLE", "x"),
        ],
    )
    .unwrap();
    assert!(!c.mysql.accept_fk_cascades && !c.snapshot.initial);
    assert_eq!(c.state_dir, PathBuf::from("/tmp/env"));
    assert_eq!(c.mysql.tables, vec!["x"]);
    // Missing settings name both the variable and the key.
    let err = load(&BASE[1..]).unwrap_err().to_string();
    assert_eq!(
        err,
        "MYSQL_HOST is required: set the environment variable MYSQL_HOST or `mysql.host` in \
         the config file"
    );
    let mut vars = BASE.to_vec();
    vars.push(("KAFKA_KEY", "row"));
    let err = load(&vars).unwrap_err().to_string();
    assert_eq!(
        err,
        "KAFKA_KEY=\"row\" is not valid: expected `table` or `primary_key`"
    );
}

#[test]
fn exactly_once_is_on_by_default_and_either_value_is_accepted() {
    let mut vars = BASE.to_vec();
    vars.extend([("KAFKA_BROKERS", "k:9092"), ("output", "cdc")]);
    let c = load(&vars).unwrap();
    assert!(c.kafka.as_ref().unwrap().exactly_once);
    assert_eq!(c.recover, Recover::Local);
    for (v, want) in [("false", false), ("true", true), ("0", false)] {
        let mut with = vars.clone();
        with.push(("EXACTLY_ONCE", v));
        assert_eq!(
            load(&with).unwrap().kafka.unwrap().exactly_once,
            want,
            "{v}"
        );
    }
    let mut bad = vars.clone();
    bad.push(("EXACTLY_ONCE", "maybe"));
    assert!(load(&bad).unwrap_err().to_string().contains("EXACTLY_ONCE"));
    // Checked without a broker too, like the other settings.
    let mut stdout = BASE.to_vec();
    stdout.push(("EXACTLY_ONCE", "maybe"));
    assert!(load(&stdout).is_err());
    // The file's top-level key.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "exactly_once = false\n[kafka]\nbrokers = \"k:9092\"\ntopic = \"cdc\"\n",
    )
    .unwrap();
    let map: HashMap<String, String> = BASE
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let c = Config::load(Some(&file), &move |k| map.get(k).cloned()).unwrap();
    assert!(!c.kafka.unwrap().exactly_once);
}

#[test]
fn recovery_from_kafka_needs_exactly_once_and_a_broker() {
    let mut vars = BASE.to_vec();
    vars.push(("STATE_RECOVER", "kafka"));
    let err = load(&vars).unwrap_err().to_string();
    assert!(
        err.contains("STATE_RECOVER") && err.contains("KAFKA_BROKERS"),
        "{err}"
    );
    vars.extend([("KAFKA_BROKERS", "k:9092"), ("output", "cdc")]);
    assert_eq!(load(&vars).unwrap().recover, Recover::Kafka);
    let mut off = vars.clone();
    off.push(("EXACTLY_ONCE", "false"));
    assert!(load(&off).is_err());
    let mut typo = BASE.to_vec();
    typo.push(("STATE_RECOVER", "kafak"));
    assert!(load(&typo)
        .unwrap_err()
        .to_string()
        .contains("`local` or `kafka`"));
}

#[test]
fn exactly_once_refuses_settings_that_would_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let map: HashMap<String, String> = BASE
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (producer, ok) in [
        ("partitioner = \"murmur2_random\"", false),
        ("partitioner = \"consistent_random\"", true),
        ("\"enable.gapless.guarantee\" = \"false\"", false),
        ("\"enable.idempotence\" = \"false\"", false),
    ] {
        let file = dir.path().join("s.toml");
        std::fs::write(
            &file,
            format!(
                "[kafka]\nbrokers = \"k:9092\"\ntopic = \"cdc\"\n[kafka.producer]\n{producer}\n"
            ),
        )
        .unwrap();
        let m = map.clone();
        let r = Config::load(Some(&file), &move |k| m.get(k).cloned());
        assert_eq!(
            r.is_ok(),
            ok,
            "{producer}: {:?}",
            r.err().map(|e| e.to_string())
        );
        if let Err(e) = r {
            assert!(e.to_string().contains("exactly_once = false"), "{e}");
        }
        // At-least-once mode takes them.
        std::fs::write(
            &file,
            format!("exactly_once = false\n[kafka]\nbrokers = \"k:9092\"\ntopic = \"cdc\"\n[kafka.producer]\n{producer}\n"),
        )
        .unwrap();
        let m = map.clone();
        assert!(
            Config::load(Some(&file), &move |k| m.get(k).cloned()).is_ok(),
            "{producer}"
        );
    }
}

#[test]
fn patterns_choose_tables_and_name_their_own_state() {
    // `MYSQL_TABLE=*`: every table of the schema, and a state name no single table can have.
    let mut vars = BASE.to_vec();
    vars[4] = ("MYSQL_TABLE", "*");
    vars.push(("MYSQL_EXCLUDE", "tmp_*, shop.audit_secret"));
    let c = load(&vars).unwrap();
    assert!(c.has_patterns());
    assert!(c.captured_tables().is_empty());
    let f = c.table_filter();
    assert!(f.captures("shop", "orders") && f.captures("shop", "created_later"));
    assert!(!f.captures("shop", "tmp_load") && !f.captures("shop", "audit_secret"));
    assert!(!f.captures("crm", "orders") && !f.captures("mysql", "user"));
    let name = c.position_file_name();
    let hash = name
        .strip_prefix("binlog_position_shop_patterns_")
        .and_then(|r| r.strip_suffix(".json"))
        .unwrap_or_else(|| panic!("{name}"));
    assert_eq!(hash.len(), 64, "longer than any table name: {name}");
    // Another exclude list is another pipeline.
    vars.pop();
    assert_ne!(load(&vars).unwrap().position_file_name(), name);
    // Named tables and patterns together, across databases (TOML).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "[mysql]\ntables = [\"orders\"]\ninclude = [\"crm.*\"]\nexclude = [\"crm.tmp\"]\n",
    )
    .unwrap();
    let base: HashMap<String, String> = BASE[..4]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let c = Config::load(Some(&file), &move |k| base.get(k).cloned()).unwrap();
    assert_eq!(
        c.captured_tables(),
        vec![("shop".to_owned(), "orders".to_owned())]
    );
    let f = c.table_filter();
    assert!(f.captures("shop", "orders") && f.captures("crm", "contacts"));
    assert!(!f.captures("crm", "tmp") && !f.captures("shop", "items"));
    // A pattern that is not `table` or `db.table`.
    let mut vars = BASE.to_vec();
    vars.push(("MYSQL_INCLUDE", "a.b.c"));
    assert!(load(&vars).unwrap_err().to_string().contains("db.table"));
    // Without any table or pattern: MYSQL_TABLE is required, as before.
    let vars: Vec<_> = BASE[..4].to_vec();
    assert!(load(&vars).unwrap_err().to_string().contains("MYSQL_TABLE"));
}

#[test]
fn a_topic_template_gives_each_table_a_valid_topic() {
    let mut vars = BASE.to_vec();
    vars.push(("KAFKA_BROKERS", "k:9092"));
    vars.push(("output", "cdc.{schema}.{table}"));
    let c = load(&vars).unwrap();
    let k = c.kafka.as_ref().unwrap();
    assert!(k.topic_per_table());
    assert_eq!((k.partitions, k.replication_factor), (1, 1));
    assert_eq!(k.topic_for("shop", "orders"), "cdc.shop.orders");
    // Kafka allows only [a-zA-Z0-9._-] in a topic name.
    assert_eq!(
        k.topic_for("my shop", "ordres_é$x"),
        "cdc.my_shop.ordres___x"
    );
    vars.pop();
    vars.push(("output", "plain"));
    assert!(!load(&vars).unwrap().kafka.unwrap().topic_per_table());
    // Partitions and replication factor from the file; zero is refused.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    std::fs::write(&file, "[kafka]\npartitions = 4\nreplication_factor = 3\n").unwrap();
    let m = map.clone();
    let c = Config::load(Some(&file), &move |k| m.get(k).cloned()).unwrap();
    let k = c.kafka.unwrap();
    assert_eq!((k.partitions, k.replication_factor), (4, 3));
    std::fs::write(&file, "[kafka]\npartitions = 0\n").unwrap();
    let err = Config::load(Some(&file), &move |k| map.get(k).cloned()).unwrap_err();
    assert!(err.to_string().contains("kafka.partitions"), "{err}");
}

#[test]
fn kafka_properties_is_the_producer_table_under_its_general_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    let map: HashMap<String, String> = BASE
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    std::fs::write(
        &file,
        "[kafka]\nbrokers = \"k:9092\"\ntopic = \"cdc\"\n[kafka.properties]\n\
         \"security.protocol\" = \"SASL_SSL\"\n\"sasl.password\" = \"hunter2\"\n\
         [kafka.producer]\n\"linger.ms\" = \"2\"\n\"security.protocol\" = \"SASL_SSL\"\n",
    )
    .unwrap();
    let c = Config::load(Some(&file), &|k| map.get(k).cloned()).unwrap();
    let k = c.kafka.as_ref().unwrap();
    assert_eq!(k.producer["security.protocol"], "SASL_SSL");
    assert_eq!(k.producer["sasl.password"], "hunter2");
    assert_eq!(k.producer["linger.ms"], "2");
    assert!(!format!("{c:?}").contains("hunter2"));
    // The same key with two values is refused, naming it.
    std::fs::write(
        &file,
        "[kafka]\nbrokers = \"k:9092\"\ntopic = \"cdc\"\n[kafka.properties]\n\"acks\" = \"1\"\n\
         [kafka.producer]\n\"acks\" = \"all\"\n",
    )
    .unwrap();
    let err = Config::load(Some(&file), &|k| map.get(k).cloned()).unwrap_err();
    assert!(
        err.to_string().contains("kafka.properties") && err.to_string().contains("acks"),
        "{err}"
    );
}

#[test]
fn metrics_addr_takes_host_port_or_a_bare_port() {
    let mut vars = BASE.to_vec();
    assert_eq!(load(&vars).unwrap().metrics_addr, None);
    vars.push(("METRICS_ADDR", ":9187"));
    assert_eq!(
        load(&vars).unwrap().metrics_addr,
        Some("0.0.0.0:9187".parse().unwrap())
    );
    vars.pop();
    vars.push(("METRICS_ADDR", "127.0.0.1:9100"));
    assert_eq!(
        load(&vars).unwrap().metrics_addr,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    vars.pop();
    vars.push(("METRICS_ADDR", "nine"));
    let err = load(&vars).unwrap_err();
    assert!(
        err.to_string().contains("METRICS_ADDR") && err.to_string().contains(":9187"),
        "{err}"
    );
}

#[test]
fn mysql_ssl_settings_are_parsed_and_checked() {
    assert_eq!(load(&BASE).unwrap().mysql.ssl.mode, SslMode::Preferred);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let ca_s = ca.display().to_string();
    let mut vars = BASE.to_vec();
    vars.extend([
        ("MYSQL_SSL_MODE", "VERIFY-IDENTITY"),
        ("MYSQL_SSL_CA", ca_s.as_str()),
    ]);
    let c = load(&vars).unwrap();
    assert_eq!(c.mysql.ssl.mode, SslMode::VerifyIdentity);
    assert_eq!(c.mysql.ssl.ca.as_deref(), Some(ca.as_path()));
    // A CA without a mode: its certificate check is what was asked for.
    let mut ca_only = BASE.to_vec();
    ca_only.push(("MYSQL_SSL_CA", ca_s.as_str()));
    assert_eq!(load(&ca_only).unwrap().mysql.ssl.mode, SslMode::VerifyCa);

    let mut bad = BASE.to_vec();
    bad.push(("MYSQL_SSL_MODE", "on"));
    let err = load(&bad).unwrap_err().to_string();
    assert!(
        err.contains("MYSQL_SSL_MODE") && err.contains("verify_identity"),
        "{err}"
    );

    let mut missing = BASE.to_vec();
    missing.extend([
        ("MYSQL_SSL_MODE", "verify_ca"),
        ("MYSQL_SSL_CA", "/nonexistent/ca.pem"),
    ]);
    let err = load(&missing).unwrap_err().to_string();
    assert!(
        err.contains("MYSQL_SSL_CA") && err.contains("readable PEM file"),
        "{err}"
    );

    let mut half = BASE.to_vec();
    half.extend([
        ("MYSQL_SSL_MODE", "required"),
        ("MYSQL_SSL_CERT", ca_s.as_str()),
    ]);
    let err = load(&half).unwrap_err().to_string();
    assert!(err.contains("MYSQL_SSL_KEY"), "{err}");

    let mut off = BASE.to_vec();
    off.extend([
        ("MYSQL_SSL_MODE", "disabled"),
        ("MYSQL_SSL_CA", ca_s.as_str()),
    ]);
    let err = load(&off).unwrap_err().to_string();
    assert!(
        err.contains("MYSQL_SSL_MODE") && err.contains("disabled"),
        "{err}"
    );
}
