//! `sluice transform new`: writes a ready transform project in Rust, Python or JavaScript, like
//! Fluvio's `smdk generate`.
//!
//! Design note: the files live in `host/templates/transform*/` and are embedded with
//! `include_str!`, so the binary carries them. The only substitutions are the project name, the
//! type name, the `.wasm` file stem and the SDK's path; nothing else is generated, so the
//! templates read as the project an author gets. Each project uses the guest SDK by path (the
//! checkout this binary was built from, see [`default_sdk_dir`]): a Rust crate as a path
//! dependency (its `Cargo.toml` says how to switch to a git or registry one), a Python project
//! through its `conftest.py` and the build command, a JavaScript one as a `file:` dependency.

use std::path::{Path, PathBuf};

const CARGO_TOML: &str = include_str!("../../templates/transform/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../../templates/transform/lib.rs.tmpl");
const EVENTS: &str = include_str!("../../templates/transform/events.jsonl");
const GITIGNORE: &str = include_str!("../../templates/transform/gitignore");
const PY_APP: &str = include_str!("../../templates/transform-python/app.py.tmpl");
const PY_TEST: &str = include_str!("../../templates/transform-python/test_app.py.tmpl");
const PY_CONFTEST: &str = include_str!("../../templates/transform-python/conftest.py.tmpl");
const PY_GITIGNORE: &str = include_str!("../../templates/transform-python/gitignore");
const JS_APP: &str = include_str!("../../templates/transform-js/app.js.tmpl");
const JS_TEST: &str = include_str!("../../templates/transform-js/app.test.js.tmpl");
const JS_PACKAGE: &str = include_str!("../../templates/transform-js/package.json.tmpl");
const JS_GITIGNORE: &str = include_str!("../../templates/transform-js/gitignore");

/// The language of a new transform project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// A Rust crate built with `cargo build --target wasm32-wasip2` (the `sluice-guest` SDK).
    #[default]
    Rust,
    /// A Python module built with componentize-py (the `sluice` package, `guest-sdk/python`).
    Python,
    /// A JavaScript module built with componentize-js (`sluice-transform`, `guest-sdk/js`).
    Js,
}

impl Lang {
    /// Parses `rust`, `python` (`py`), `js` (`javascript`).
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "rust" | "rs" => Some(Lang::Rust),
            "python" | "py" => Some(Lang::Python),
            "js" | "javascript" => Some(Lang::Js),
            _ => None,
        }
    }
}

/// Python keywords, and the modules a transform's module must not shadow: the SDK's, the
/// generated bindings', and the standard library's (componentize-py puts the standard library
/// first on the path, so a module named `email` or `uuid` would never be imported).
const PY_RESERVED: &[&str] = &[
    "sluice",
    "conftest",
    "wit_world",
    "componentize_py_types",
    "poll_loop",
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
];
/// Python 3.11's `sys.stdlib_module_names` (public ones), which componentize-py 0.25 embeds.
const PY_STDLIB: &str = include_str!("../../templates/transform-python/stdlib-modules.txt");

/// Names Cargo or Rust reserve, which a transform crate cannot take.
const RESERVED: &[&str] = &[
    "test",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "self",
    "super",
    "crate",
    "sluice_guest",
];

/// Why a transform crate could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{name:?} is not a valid transform name: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("{0} already exists; choose another name or --path, or remove it")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks that `name` can be a crate name: ASCII letters, digits, `-` and `_`, starting with a
/// letter, and not a reserved name.
pub(crate) fn validate_name(name: &str) -> Result<(), TemplateError> {
    let invalid = |reason| TemplateError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    let first = name.chars().next().ok_or_else(|| invalid("it is empty"))?;
    if !first.is_ascii_alphabetic() {
        return Err(invalid("it must start with an ASCII letter"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid("use only ASCII letters, digits, '-' and '_'"));
    }
    if RESERVED.contains(&file_stem(name).as_str()) {
        return Err(invalid("Cargo or Rust reserves it"));
    }
    Ok(())
}

/// The stem of the `.wasm` file Cargo builds for crate `name` (`-` becomes `_`), which is also
/// the transform's default name in Sluice: `my-mask` builds `my_mask.wasm`, named `my_mask`.
pub fn file_stem(name: &str) -> String {
    name.replace('-', "_")
}

/// The Rust type name of the example transform: `my-mask` gives `MyMask`.
fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut cs = p.chars();
            match cs.next() {
                Some(c) => c.to_ascii_uppercase().to_string() + cs.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The guest SDK of the checkout this binary was built from, canonicalised; `None` when that
/// checkout is gone (a binary copied to another machine).
pub fn default_sdk_dir() -> Option<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-sdk")
        .canonicalize()
        .ok()
}

/// Writes the project `name` in `lang` into `parent/name` (which must not exist) and returns
/// its directory. `sdk` is the `guest-sdk` directory: the Rust crate's path dependency, whose
/// `python/` and `js/` hold the other SDKs.
pub fn generate(
    name: &str,
    parent: &Path,
    sdk: &Path,
    lang: Lang,
) -> Result<PathBuf, TemplateError> {
    validate_name(name)?;
    let stem = file_stem(name);
    if lang == Lang::Python
        && (PY_RESERVED.contains(&stem.as_str()) || PY_STDLIB.split_whitespace().any(|m| m == stem))
    {
        return Err(TemplateError::InvalidName {
            name: name.to_owned(),
            reason: "Python reserves it, or the module would shadow one the transform imports",
        });
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(TemplateError::Exists(dir));
    }
    // TOML basic strings need `\` and `"` escaped (a Windows path, an odd directory name).
    let sdk_path = sdk
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    // A Python string literal: JSON's escaping is valid Python.
    let sdk_path_py =
        serde_json::Value::String(sdk.join("python").display().to_string()).to_string();
    // Inside a JSON string (package.json): JSON's escaping, without the quotes.
    let sdk_path_js = serde_json::Value::String(sdk.join("js").display().to_string()).to_string();
    let sdk_path_js = &sdk_path_js[1..sdk_path_js.len() - 1];
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{name_lower}}", &name.to_ascii_lowercase())
            .replace("{{sdk_path_js}}", sdk_path_js)
            .replace("{{type_name}}", &type_name(name))
            .replace("{{file_stem}}", &file_stem(name))
            .replace("{{sdk_path}}", &sdk_path)
            .replace("{{sdk_path_py}}", &sdk_path_py)
    };
    let files: Vec<(String, String)> = match lang {
        Lang::Rust => vec![
            ("Cargo.toml".into(), fill(CARGO_TOML)),
            ("src/lib.rs".into(), fill(LIB_RS)),
            (".gitignore".into(), GITIGNORE.to_owned()),
        ],
        Lang::Python => vec![
            (format!("{stem}.py"), fill(PY_APP)),
            (format!("test_{stem}.py"), fill(PY_TEST)),
            ("conftest.py".into(), fill(PY_CONFTEST)),
            (".gitignore".into(), PY_GITIGNORE.to_owned()),
        ],
        Lang::Js => vec![
            (format!("{stem}.js"), fill(JS_APP)),
            (format!("{stem}.test.js"), fill(JS_TEST)),
            ("package.json".into(), fill(JS_PACKAGE)),
            (".gitignore".into(), JS_GITIGNORE.to_owned()),
        ],
    };
    let samples = ("samples/events.jsonl".to_owned(), EVENTS.to_owned());
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TemplateError::Write { path, source }
    };
    std::fs::create_dir_all(parent).map_err(write_err(parent))?;
    // `create_dir` (not `create_dir_all`) fails if another process made it meanwhile.
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => TemplateError::Exists(dir.clone()),
        _ => TemplateError::Write {
            path: dir.clone(),
            source: e,
        },
    })?;
    for (rel, text) in files.into_iter().chain([samples]) {
        let path = dir.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(write_err(p))?;
        }
        std::fs::write(&path, text).map_err(write_err(&path))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_names() {
        for ok in ["demo", "my-mask", "a_1", "Redact2"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "-x", "a b", "a.b", "é", "test", "sluice-guest"] {
            assert!(
                matches!(validate_name(bad), Err(TemplateError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_crate_name_maps_to_the_file_stem_and_type() {
        assert_eq!(file_stem("my-mask"), "my_mask");
        assert_eq!(type_name("my-mask"), "MyMask");
        assert_eq!(type_name("a__b"), "AB");
    }

    #[test]
    fn generates_once_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let tmp = tmp.path();
        let dir = generate("my-mask", tmp, Path::new("/sdk \"x\""), Lang::Rust).unwrap();
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"my-mask\""), "{cargo}");
        assert!(cargo.contains(r#"path = "/sdk \"x\"""#), "{cargo}");
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("export_transform!(MyMask);"));
        assert!(!lib.contains("{{"), "every placeholder is filled");
        assert_eq!(
            std::fs::read_to_string(dir.join("samples/events.jsonl"))
                .unwrap()
                .lines()
                .count(),
            3
        );
        assert!(matches!(
            generate("my-mask", tmp, Path::new("/sdk"), Lang::Rust),
            Err(TemplateError::Exists(_))
        ));
    }

    #[test]
    fn a_javascript_project_is_a_module_its_test_and_a_package_on_the_sdk() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = generate("My-Mask", tmp.path(), Path::new("/sdk \"x\""), Lang::Js).unwrap();
        let app = std::fs::read_to_string(dir.join("My_Mask.js")).unwrap();
        assert!(app.contains("export class MyMask {") && app.contains("exportTransform(MyMask)"));
        let test = std::fs::read_to_string(dir.join("My_Mask.test.js")).unwrap();
        assert!(test.contains("import { MyMask } from './My_Mask.js';"));
        let package = std::fs::read_to_string(dir.join("package.json")).unwrap();
        let package: serde_json::Value = serde_json::from_str(&package).unwrap();
        assert_eq!(package["name"], "my-mask");
        assert_eq!(
            package["dependencies"]["sluice-transform"],
            "file:/sdk \"x\"/js"
        );
        assert_eq!(
            package["scripts"]["build"],
            "sluice-js-build My_Mask.js -o My_Mask.wasm"
        );
        assert!(!app.contains("{{") && !test.contains("{{"));
    }

    #[test]
    fn a_python_project_is_a_module_its_test_and_the_sdk_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = generate("my-mask", tmp.path(), Path::new("/sdk \"x\""), Lang::Python).unwrap();
        let app = std::fs::read_to_string(dir.join("my_mask.py")).unwrap();
        assert!(app.contains("class MyMask:") && app.contains("@sluice.transform"));
        let test = std::fs::read_to_string(dir.join("test_my_mask.py")).unwrap();
        assert!(test.contains("from my_mask import MyMask"));
        let conftest = std::fs::read_to_string(dir.join("conftest.py")).unwrap();
        assert!(
            conftest.contains(r#"sys.path.insert(0, "/sdk \"x\"/python")"#),
            "{conftest}"
        );
        for text in [&app, &test, &conftest] {
            assert!(!text.contains("{{"), "every placeholder is filled");
        }
        assert!(dir.join("samples/events.jsonl").exists());
        // A module name Python reserves, or one that would shadow the SDK.
        for bad in ["sluice", "class", "json", "email", "uuid"] {
            assert!(matches!(
                generate(bad, tmp.path(), Path::new("/sdk"), Lang::Python),
                Err(TemplateError::InvalidName { .. })
            ));
        }
        assert_eq!(Lang::parse("py"), Some(Lang::Python));
        assert_eq!(Lang::parse("js"), Some(Lang::Js));
        assert_eq!(Lang::parse("cobol"), None);
    }
}
