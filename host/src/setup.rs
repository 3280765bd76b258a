//! `sluice setup`: creates the MySQL user Sluice runs as, with only the grants it needs, from
//! administrator credentials used once; reports the server's settings; prints the
//! configuration to use.
//!
//! Design note: the decisions are pure and unit-tested below: which privileges Sluice needs on
//! this server (`required`, from its flavor and version, the captured tables and patterns, and
//! whether and where a snapshot is configured), which of them the account already holds
//! (`parse_grants` over `SHOW GRANTS FOR`, then `missing`), and the statements that add the
//! rest (`statements`). [`run_setup`](crate::setup::run_setup) does the I/O around them: it
//! runs only what is missing and prints each statement, so a second run finds nothing to
//! change. The password is never printed or logged: a statement carries a redacted text for
//! display, a server error about it is redacted too, and an existing user's password changes
//! only on request (`--update-password`). The server settings are `sluice check`'s own
//! (`check::server_settings`): setup reports them with their fixes and changes none.
//!
//! The grants: REPLICATION SLAVE and REPLICATION CLIENT (BINLOG MONITOR on MariaDB 10.5+) on
//! `*.*`; SELECT on each named table, and on the whole database of a pattern (no grant follows
//! a table pattern, and tables created later must be readable); for a snapshot from a MariaDB
//! replica, SLAVE MONITOR and SELECT on `mysql.gtid_slave_pos`; for a snapshot on MySQL, RELOAD
//! (unless LOCK TABLES is held on every captured database) and, on 8.0+, XA_RECOVER_ADMIN.
//! Privileges that come from roles are not seen (`SHOW GRANTS FOR` does not list them), so such
//! a privilege is granted again directly; that is harmless.
//!
//! Size: the pure decisions with their SHOW GRANTS parser, the I/O in one function, and their
//! unit tests, which are half the file.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use crate::check::Status;
use crate::config::{Config, MysqlConfig};
use crate::source::TablePattern;

/// The administrator account setup connects as: used for this run only, never stored, and its
/// password never printed (`Debug` redacts it).
pub struct Admin {
    pub user: String,
    password: String,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Admin {
    /// From `MYSQL_ADMIN_USER` and `MYSQL_ADMIN_PASSWORD`; what is missing is asked for when
    /// stdin is a terminal (the password without echo), and is an error otherwise.
    pub fn from_env_or_prompt() -> Result<Admin, SetupError> {
        use std::io::IsTerminal;
        let interactive = std::io::stdin().is_terminal();
        admin_from(
            &|k| std::env::var(k).ok(),
            interactive,
            &mut || -> std::io::Result<String> {
                eprint!("MySQL administrator user (MYSQL_ADMIN_USER) [root]: ");
                std::io::stderr().flush()?;
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Ok(line)
            },
            &mut |user: &str| -> std::io::Result<String> {
                rpassword::prompt_password(format!(
                    "password of '{user}' (MYSQL_ADMIN_PASSWORD; not echoed): "
                ))
            },
        )
    }
}

/// [`Admin::from_env_or_prompt`] with its inputs given: `env` looks variables up, and the two
/// closures ask on the terminal (only called when `interactive`). A blank user counts as unset;
/// a set but empty password is a password (an account may have none).
fn admin_from(
    env: &dyn Fn(&str) -> Option<String>,
    interactive: bool,
    ask_user: &mut dyn FnMut() -> std::io::Result<String>,
    ask_password: &mut dyn FnMut(&str) -> std::io::Result<String>,
) -> Result<Admin, SetupError> {
    let user = env("MYSQL_ADMIN_USER").filter(|u| !u.trim().is_empty());
    let password = env("MYSQL_ADMIN_PASSWORD");
    if !interactive {
        return match (user, password) {
            (Some(user), Some(password)) => Ok(Admin { user, password }),
            (user, password) => Err(SetupError::NoAdminCredentials {
                missing: match (user.is_none(), password.is_none()) {
                    (true, true) => "MYSQL_ADMIN_USER and MYSQL_ADMIN_PASSWORD",
                    (true, false) => "MYSQL_ADMIN_USER",
                    _ => "MYSQL_ADMIN_PASSWORD",
                },
            }),
        };
    }
    let user = match user {
        Some(u) => u,
        None => {
            let typed = ask_user().map_err(SetupError::Prompt)?;
            match typed.trim() {
                "" => "root".to_owned(),
                u => u.to_owned(),
            }
        }
    };
    let password = match password {
        Some(p) => p,
        None => ask_password(&user).map_err(SetupError::Prompt)?,
    };
    Ok(Admin { user, password })
}

/// What `sluice setup` was asked to do besides the configuration.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    /// The host part of the account (`'user'@'host'`): where Sluice connects from.
    pub user_host: String,
    /// Print the statements that would run; change nothing.
    pub dry_run: bool,
    /// Set an existing user's password to `MYSQL_PASSWORD` when it is not that already.
    pub update_password: bool,
}

/// What a run did, for the command's last line and exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetupOutcome {
    /// Statements run (or, in a dry run, that would run).
    pub statements: usize,
    /// Server settings that fail `sluice check` (each printed with its fix).
    pub settings_failed: usize,
}

/// Why `sluice setup` stopped. Each names what to set or do; none carries a password. A
/// server's error is part of the message (not a `source()`, whose own text would repeat it).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "{missing} not set, and stdin is not a terminal to ask for them: set MYSQL_ADMIN_USER and \
         MYSQL_ADMIN_PASSWORD to an account that may create users and grant privileges (used \
         for this run only, never stored)"
    )]
    NoAdminCredentials { missing: &'static str },
    #[error("cannot read the administrator credentials from the terminal: {0}")]
    Prompt(#[source] std::io::Error),
    #[error(
        "MYSQL_PASSWORD is empty: sluice setup does not create a user without a password; set \
         MYSQL_PASSWORD to the password Sluice's user should have"
    )]
    EmptyPassword,
    #[error("cannot connect to {host}:{port} as the administrator '{user}': {error}")]
    AdminConnect {
        host: String,
        port: u16,
        user: String,
        error: mysql_async::Error,
    },
    #[error("connecting to {host}:{port} timed out after {timeout:?}")]
    ConnectTimeout {
        host: String,
        port: u16,
        timeout: Duration,
    },
    #[error("reading {what} as the administrator: {error}")]
    Read {
        what: String,
        error: mysql_async::Error,
    },
    #[error(transparent)]
    Catalog(#[from] crate::source::objects::CatalogError),
    #[error(
        "the user {account} exists and MYSQL_PASSWORD is not its password (the login was \
         refused); nothing was changed: set MYSQL_PASSWORD to its password, or run `sluice setup \
         --update-password` to change it to MYSQL_PASSWORD"
    )]
    PasswordDiffers { account: String },
    #[error("`{statement}` failed: {message}")]
    Statement {
        /// The statement as printed (the password redacted).
        statement: String,
        /// The server's error code, when the server refused it.
        code: Option<u16>,
        /// The error, with the password redacted.
        message: String,
    },
    #[error(
        "the user {account} cannot log in with MYSQL_PASSWORD after setup: {error}. Another \
         account of the same name may match this host first (SELECT User, Host FROM mysql.user), \
         or the server refuses the connection for another reason"
    )]
    UserCannotConnect {
        account: String,
        error: mysql_async::Error,
    },
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

/// Server error codes that mean a missing privilege: access denied (to a database, a login, a
/// table, a column), a privilege needed, not allowed to create users (or to with GRANT), and a
/// login refused without a password.
const DENIED: [u16; 8] = [1044, 1045, 1142, 1143, 1227, 1410, 1211, 1698];

impl SetupError {
    /// Whether the server refused a statement or a read for lack of a privilege.
    pub fn is_privilege_denied(&self) -> bool {
        match self {
            SetupError::Statement { code: Some(c), .. } => DENIED.contains(c),
            SetupError::Read {
                error: mysql_async::Error::Server(e),
                ..
            } => DENIED.contains(&e.code),
            _ => false,
        }
    }

    /// Whether the server may have been changed before this error (a statement had run).
    pub fn after_changes(&self) -> bool {
        matches!(
            self,
            SetupError::Statement { .. } | SetupError::UserCannotConnect { .. }
        )
    }
}

/// MariaDB or MySQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    MariaDb,
    MySql,
}

/// The server, from `SELECT VERSION()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Server {
    pub(crate) flavor: Flavor,
    /// Major, minor, patch (0 where the version does not say).
    pub(crate) version: (u32, u32, u32),
}

impl Server {
    /// `10.11.19-MariaDB-0+deb12u1-log`, `8.0.36`, `5.7.44-log`.
    pub(crate) fn parse(version: &str) -> Server {
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        let mut parts = version.split(['.', '-']).map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
                .unwrap_or(0)
        });
        let mut next = || parts.next().unwrap_or(0);
        Server {
            flavor,
            version: (next(), next(), next()),
        }
    }

    fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.version >= (major, minor, patch)
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = self.version;
        let name = match self.flavor {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
        };
        write!(f, "{name} {a}.{b}.{c}")
    }
}

/// Where a privilege applies, as in `GRANT … ON <level>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Level {
    /// `*.*`
    Global,
    /// `` `db`.* ``
    Schema(String),
    /// `` `db`.`table` ``
    Table(String, String),
}

impl Level {
    fn sql(&self) -> String {
        match self {
            Level::Global => "*.*".to_owned(),
            Level::Schema(s) => format!("{}.*", ident(s)),
            Level::Table(s, t) => format!("{}.{}", ident(s), ident(t)),
        }
    }

    /// Whether a privilege held at this level applies at `other` too.
    pub(crate) fn covers(&self, other: &Level) -> bool {
        match (self, other) {
            (Level::Global, _) => true,
            (Level::Schema(a), Level::Schema(b)) => a == b,
            (Level::Schema(a), Level::Table(b, _)) => a == b,
            (Level::Table(..), Level::Table(..)) => self == other,
            _ => false,
        }
    }
}

/// A privilege Sluice needs, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    /// As written in the GRANT for this server.
    pub(crate) privilege: &'static str,
    pub(crate) level: Level,
}

/// What a configuration captures, as far as grants go.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    /// The tables named in `MYSQL_TABLE` (`Config::captured_tables`).
    pub(crate) named: Vec<(String, String)>,
    /// The include patterns (`MYSQL_TABLE`'s and `MYSQL_INCLUDE`).
    pub(crate) patterns: Vec<TablePattern>,
    /// Whether `MYSQL_EXCLUDE` is set.
    pub(crate) excludes: bool,
    /// The tables captured now on the server (named and matched), for the patterns whose
    /// database part is itself a pattern.
    pub(crate) matched: Vec<(String, String)>,
    /// A snapshot is configured (`INITIAL_SNAPSHOT`, `FORCE_SNAPSHOT`, `SNAPSHOT_WHEN_NEEDED`).
    pub(crate) snapshot: bool,
    /// The snapshot is read from another server than the stream (`MYSQL_SNAPSHOT_HOST`).
    pub(crate) snapshot_elsewhere: bool,
}

/// The privileges Sluice needs, in the order they are granted, with notes for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    pub(crate) privileges: Vec<Need>,
    /// MySQL snapshot: LOCK TABLES on each of these schemas stands in for RELOAD.
    pub(crate) lock_schemas: Vec<String>,
    pub(crate) notes: Vec<String>,
}

/// What Sluice needs on `server` for `scope`.
pub(crate) fn required(server: Server, scope: &Scope) -> Needs {
    let mut needs = Needs::default();
    let global = |p: &'static str| Need {
        privilege: p,
        level: Level::Global,
    };
    needs.privileges.push(global("REPLICATION SLAVE"));
    let mariadb = server.flavor == Flavor::MariaDb;
    // MariaDB 10.5 split REPLICATION CLIENT; BINLOG MONITOR is the part Sluice uses (and what
    // the server shows for REPLICATION CLIENT since).
    needs
        .privileges
        .push(global(if mariadb && server.at_least(10, 5, 0) {
            "BINLOG MONITOR"
        } else {
            "REPLICATION CLIENT"
        }));
    if scope.snapshot && scope.snapshot_elsewhere {
        if mariadb {
            // The replica's filter check (SHOW ALL SLAVES STATUS) and its GTID state. Before
            // 10.5, REPLICATION CLIENT covers SHOW SLAVE STATUS.
            if server.at_least(10, 5, 0) {
                needs.privileges.push(global("SLAVE MONITOR"));
            }
            needs.notes.push(
                "the snapshot host (MYSQL_SNAPSHOT_HOST) is a replica: these grants reach it by \
                 replication; if it does not replicate the mysql schema, run `sluice setup` \
                 against it too (MYSQL_HOST set to it)"
                    .to_owned(),
            );
        } else {
            needs.notes.push(
                "MYSQL_SNAPSHOT_HOST names another server, but Sluice refuses a MySQL replica as \
                 the snapshot host: unset it to snapshot from MYSQL_HOST"
                    .to_owned(),
            );
        }
    }

    // SELECT: whole schemas for patterns, tables for names.
    let mut schemas: Vec<String> = Vec::new();
    for p in &scope.patterns {
        if !TablePattern::is_glob(&p.schema) && !schemas.contains(&p.schema) {
            schemas.push(p.schema.clone());
        }
    }
    let glob_schema: Vec<&TablePattern> = scope
        .patterns
        .iter()
        .filter(|p| TablePattern::is_glob(&p.schema))
        .collect();
    let mut matched_schemas: Vec<String> = Vec::new();
    if !glob_schema.is_empty() {
        for (s, t) in &scope.matched {
            let named = scope.named.iter().any(|(ns, nt)| ns == s && nt == t);
            if !named && !schemas.contains(s) && !matched_schemas.contains(s) {
                matched_schemas.push(s.clone());
            }
        }
        let list: Vec<String> = glob_schema.iter().map(|p| p.to_string()).collect();
        needs.notes.push(format!(
            "{} also match databases by name: SELECT is granted on the databases they match now{}; \
             run `sluice setup` again after creating another",
            list.join(", "),
            if matched_schemas.is_empty() {
                " (none)".to_owned()
            } else {
                format!(" ({})", matched_schemas.join(", "))
            }
        ));
    }
    if !scope.patterns.is_empty()
        && (scope.excludes || scope.patterns.iter().any(|p| p.table != "*"))
    {
        needs.notes.push(
            "SELECT on a pattern's database covers all its tables, also those the patterns leave \
             out: a grant cannot follow a table pattern"
                .to_owned(),
        );
    }
    schemas.extend(matched_schemas);
    if scope.snapshot && scope.snapshot_elsewhere && mariadb {
        needs.privileges.push(Need {
            privilege: "SELECT",
            level: Level::Table("mysql".to_owned(), "gtid_slave_pos".to_owned()),
        });
    }
    for s in &schemas {
        needs.privileges.push(Need {
            privilege: "SELECT",
            level: Level::Schema(s.clone()),
        });
    }
    let mut tables: Vec<&(String, String)> = Vec::new();
    for t in &scope.named {
        if !schemas.contains(&t.0) && !tables.contains(&t) {
            tables.push(t);
        }
    }
    for (s, t) in &tables {
        needs.privileges.push(Need {
            privilege: "SELECT",
            level: Level::Table(s.clone(), t.clone()),
        });
    }

    if server.flavor == Flavor::MySql {
        if scope.snapshot {
            // The brief lock around the snapshot's point: FLUSH TABLES WITH READ LOCK (RELOAD),
            // or LOCK TABLES … READ where that is held on every captured schema.
            needs.privileges.push(global("RELOAD"));
            let mut locks: Vec<String> = schemas.clone();
            for (s, _) in scope.named.iter().chain(&scope.matched) {
                if !locks.contains(s) {
                    locks.push(s.clone());
                }
            }
            needs.lock_schemas = locks;
            if server.at_least(8, 0, 0) {
                needs.privileges.push(global("XA_RECOVER_ADMIN"));
            }
        } else {
            needs.notes.push(
                "no snapshot is configured, so RELOAD and XA_RECOVER_ADMIN (for MySQL's snapshot \
                 lock) are not granted: run `sluice setup` again with INITIAL_SNAPSHOT=true before \
                 configuring one"
                    .to_owned(),
            );
        }
    }
    if scope.snapshot && mariadb {
        needs.notes.push(
            "optional: PROCESS lets the snapshot name the sessions that wait for a captured \
             table's metadata lock (GRANT PROCESS ON *.* TO the user); setup does not grant it"
                .to_owned(),
        );
    }
    needs
}

/// One privilege an account holds, from a `SHOW GRANTS` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    /// Upper case, aliases folded ([`canonical`]); `ALL PRIVILEGES` for `ALL`.
    pub(crate) privilege: String,
    pub(crate) level: Level,
}

/// One name per privilege: MariaDB 10.5+ shows REPLICATION CLIENT as BINLOG MONITOR, and
/// MySQL 8.0.22+ and MariaDB accept REPLICA for SLAVE.
fn canonical(privilege: &str) -> String {
    let p = privilege.trim().to_ascii_uppercase();
    match p.as_str() {
        "BINLOG MONITOR" => "REPLICATION CLIENT".to_owned(),
        "REPLICATION REPLICA" => "REPLICATION SLAVE".to_owned(),
        "REPLICA MONITOR" => "SLAVE MONITOR".to_owned(),
        "ALL" => "ALL PRIVILEGES".to_owned(),
        _ => p,
    }
}

/// The privileges `SHOW GRANTS FOR` lines give, on tables, schemas and `*.*`. Column
/// privileges (`SELECT (a, b)`), routines, proxies and roles are left out: none covers a need.
pub(crate) fn parse_grants(lines: &[String]) -> Vec<Held> {
    let mut out = Vec::new();
    for line in lines {
        let Some(rest) = strip_prefix_ci(line.trim(), "GRANT ") else {
            continue;
        };
        let Some((privileges, rest)) = split_keyword(rest, " ON ") else {
            continue;
        };
        let Some((level, _)) = split_keyword(rest, " TO ") else {
            continue;
        };
        let Some(level) = parse_level(level) else {
            continue;
        };
        for p in split_top_level(privileges) {
            if p.contains('(') {
                continue;
            }
            out.push(Held {
                privilege: canonical(p),
                level: level.clone(),
            });
        }
    }
    out
}

/// Whether `SHOW GRANTS` lines grant a role (`GRANT `r`@`%` TO …`, no ON): its privileges do
/// not show.
pub(crate) fn grants_roles(lines: &[String]) -> bool {
    lines.iter().any(|l| {
        strip_prefix_ci(l.trim(), "GRANT ").is_some_and(|r| split_keyword(r, " ON ").is_none())
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Splits at the first ` KEYWORD ` (any case) outside backquotes and string literals.
fn split_keyword<'a>(s: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '`' || c == '\'' || c == '"' => quote = Some(c),
            None => {
                if s.get(i..i + keyword.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
                {
                    return Some((&s[..i], &s[i + keyword.len()..]));
                }
            }
        }
    }
    None
}

/// Splits a privilege list at the commas outside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|p| !p.is_empty());
    out
}

/// `*.*`, `` `db`.* ``, `` `db`.`t` `` (or unquoted names). A schema-level name may escape the
/// LIKE wildcards (`` `my\_db`.* ``): read as the name it stands for.
fn parse_level(s: &str) -> Option<Level> {
    let s = s.trim();
    if s == "*.*" {
        return Some(Level::Global);
    }
    let (schema, rest) = read_ident(s)?;
    let rest = rest.strip_prefix('.')?;
    let schema = schema.replace("\\_", "_").replace("\\%", "%");
    if rest == "*" {
        return Some(Level::Schema(schema));
    }
    let (table, rest) = read_ident(rest)?;
    rest.is_empty().then_some(Level::Table(schema, table))
}

/// A backquoted identifier (with doubled backquotes inside) or a bare one up to the next `.`.
fn read_ident(s: &str) -> Option<(String, &str)> {
    if let Some(body) = s.strip_prefix('`') {
        let mut name = String::new();
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if chars.peek().is_some_and(|&(_, n)| n == '`') {
                    chars.next();
                    name.push('`');
                } else {
                    return Some((name, &body[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = s.find('.').unwrap_or(s.len());
        let name = &s[..end];
        let plain = name
            .chars()
            .all(|c| c.is_alphanumeric() || "_$\\%".contains(c));
        (!name.is_empty() && plain).then(|| (name.to_owned(), &s[end..]))
    }
}

/// The needs that `held` does not cover, in the needs' order. On MySQL, RELOAD is not missing
/// when LOCK TABLES is held on every schema of [`Needs::lock_schemas`] (the snapshot's other
/// way to lock).
pub(crate) fn missing(needs: &Needs, held: &[Held]) -> Vec<Need> {
    let has = |privilege: &str, level: &Level| {
        let want = canonical(privilege);
        held.iter().any(|h| {
            (h.privilege == want || h.privilege == "ALL PRIVILEGES") && h.level.covers(level)
        })
    };
    let lock_tables = !needs.lock_schemas.is_empty()
        && needs
            .lock_schemas
            .iter()
            .all(|s| has("LOCK TABLES", &Level::Schema(s.clone())));
    needs
        .privileges
        .iter()
        .filter(|n| !has(n.privilege, &n.level))
        .filter(|n| !(n.privilege == "RELOAD" && lock_tables))
        .cloned()
        .collect()
}

/// The account's password, as found before any change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Password {
    /// No such account: it is created with `MYSQL_PASSWORD`.
    New,
    /// The account exists and `MYSQL_PASSWORD` logs in.
    Matches,
    /// The account exists, `MYSQL_PASSWORD` does not log in, and `--update-password` asks to
    /// set it.
    Update,
}

/// A statement to run, with the text shown for it (the password redacted).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    sql: String,
    pub(crate) shown: String,
}

impl fmt::Debug for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `'user'@'host'`, quoted for SQL.
pub(crate) fn account(user: &str, host: &str) -> String {
    format!("{}@{}", literal(user), literal(host))
}

/// The statements that make `account` hold `missing`, after creating it or setting its
/// password as `password` says. Privileges on one level go in one GRANT.
pub(crate) fn statements(
    account: &str,
    secret: &str,
    password: Password,
    missing: &[Need],
) -> Vec<Statement> {
    let mut out = Vec::new();
    let shown_secret = "<MYSQL_PASSWORD>";
    match password {
        Password::New => out.push(Statement {
            sql: format!(
                "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {}",
                literal(secret)
            ),
            shown: format!("CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {shown_secret}"),
        }),
        Password::Update => out.push(Statement {
            sql: format!("ALTER USER {account} IDENTIFIED BY {}", literal(secret)),
            shown: format!("ALTER USER {account} IDENTIFIED BY {shown_secret}"),
        }),
        Password::Matches => {}
    }
    let mut levels: Vec<(&Level, Vec<&str>)> = Vec::new();
    for n in missing {
        match levels.iter_mut().find(|(l, _)| *l == &n.level) {
            Some((_, ps)) => ps.push(n.privilege),
            None => levels.push((&n.level, vec![n.privilege])),
        }
    }
    for (level, privileges) in levels {
        let sql = format!(
            "GRANT {} ON {} TO {account}",
            privileges.join(", "),
            level.sql()
        );
        out.push(Statement {
            shown: sql.clone(),
            sql,
        });
    }
    out
}

/// A string literal, safe under any `sql_mode` setup leaves (it sets the session's to `''`,
/// where the backslash escapes).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// A backquoted identifier.
fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// The configuration to use, as shell `export` lines: the MySQL settings of `cfg` (only those
/// that differ from their defaults beyond the required ones). The password is never printed: a
/// comment says to set it.
pub(crate) fn configuration(cfg: &Config) -> Vec<String> {
    let m = &cfg.mysql;
    let mut vars: Vec<(&str, String)> = vec![
        ("MYSQL_HOST", m.host.clone()),
        ("MYSQL_PORT", m.port.to_string()),
        ("MYSQL_USER", m.user.clone()),
        ("MYSQL_DATABASE", m.database.clone()),
    ];
    if m.schema != m.database {
        vars.push(("MYSQL_SCHEMA", m.schema.clone()));
    }
    if !m.tables.is_empty() {
        vars.push(("MYSQL_TABLE", m.tables.join(",")));
    }
    // `include` holds MYSQL_TABLE's patterns first, then MYSQL_INCLUDE's.
    let from_table = m.tables.iter().filter(|t| TablePattern::is_glob(t)).count();
    let include: Vec<String> = m
        .include
        .iter()
        .skip(from_table)
        .map(|p| p.to_string())
        .collect();
    if !include.is_empty() {
        vars.push(("MYSQL_INCLUDE", include.join(",")));
    }
    if !m.exclude.is_empty() {
        let exclude: Vec<String> = m.exclude.iter().map(|p| p.to_string()).collect();
        vars.push(("MYSQL_EXCLUDE", exclude.join(",")));
    }
    if m.snapshot_host != m.host {
        vars.push(("MYSQL_SNAPSHOT_HOST", m.snapshot_host.clone()));
    }
    if m.server_id != crate::config::DEFAULT_SERVER_ID {
        vars.push(("MYSQL_SERVER_ID", m.server_id.to_string()));
    }
    if cfg.snapshot.initial {
        vars.push(("INITIAL_SNAPSHOT", "true".to_owned()));
    }
    let mut out: Vec<String> = vars
        .into_iter()
        .map(|(k, v)| format!("export {k}={}", shell_word(&v)))
        .collect();
    out.push(
        "export MYSQL_PASSWORD=...   # the password given to setup in MYSQL_PASSWORD (never printed)"
            .to_owned(),
    );
    out
}

/// `s` as one shell word: bare when it is plain, else single-quoted.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.,:/@%+=-".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the stream host as `user`/`password` (the configuration's own, or the
/// administrator's).
async fn connect_as(m: &MysqlConfig, user: &str, password: &str) -> Result<Conn, ConnectFailure> {
    let mut as_user = m.clone();
    as_user.user = user.to_owned();
    as_user.password = password.to_owned();
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        crate::source::binlog::open(&as_user, &as_user.host),
    )
    .await
    {
        Err(_) => Err(ConnectFailure::Timeout),
        Ok(r) => r.map_err(ConnectFailure::Refused),
    }
}

enum ConnectFailure {
    Timeout,
    Refused(mysql_async::Error),
}

impl ConnectFailure {
    fn into_error(
        self,
        m: &MysqlConfig,
        refused: impl FnOnce(mysql_async::Error) -> SetupError,
    ) -> SetupError {
        match self {
            ConnectFailure::Timeout => SetupError::ConnectTimeout {
                host: m.host.clone(),
                port: m.port,
                timeout: CONNECT_TIMEOUT,
            },
            ConnectFailure::Refused(e) => refused(e),
        }
    }
}

/// A login refused for its credentials (not for another reason).
fn is_login_refused(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == 1045 || s.code == 1698)
}

/// `SHOW GRANTS FOR` the account; `None` when it does not exist (error 1141).
async fn show_grants(conn: &mut Conn, account: &str) -> Result<Option<Vec<String>>, SetupError> {
    let lines: Result<Vec<String>, _> = conn.query(format!("SHOW GRANTS FOR {account}")).await;
    match lines {
        Ok(lines) => Ok(Some(lines)),
        Err(mysql_async::Error::Server(e)) if e.code == 1141 => Ok(None),
        Err(error) => Err(SetupError::Read {
            what: format!("the grants of {account}"),
            error,
        }),
    }
}

/// `sluice setup`: see the module's note. Prints its report to `out`; returns what it did, or
/// the error that stopped it (before any change, unless [`SetupError::after_changes`]).
pub async fn run_setup(
    cfg: &Config,
    admin: &Admin,
    opts: &SetupOptions,
    out: &mut dyn Write,
) -> Result<SetupOutcome, SetupError> {
    let m = &cfg.mysql;
    if m.password.is_empty() {
        return Err(SetupError::EmptyPassword);
    }
    let mut conn = connect_as(m, &admin.user, &admin.password)
        .await
        .map_err(|f| {
            f.into_error(m, |error| SetupError::AdminConnect {
                host: m.host.clone(),
                port: m.port,
                user: admin.user.clone(),
                error,
            })
        })?;
    let read = |what: &str| {
        let what = what.to_owned();
        move |error| SetupError::Read { what, error }
    };
    // The literals below escape with a backslash, which NO_BACKSLASH_ESCAPES would not read.
    conn.query_drop("SET SESSION sql_mode = ''")
        .await
        .map_err(read("@@sql_mode"))?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(read("the server's version"))?
        .unwrap_or_default();
    let server = Server::parse(&version);
    writeln!(
        out,
        "server {}:{}: {server} ({version}), as the administrator '{}'",
        m.host, m.port, admin.user
    )?;

    let settings = crate::check::server_settings(&mut conn, m.server_id).await;
    writeln!(out, "\nserver settings (setup changes none):")?;
    let mut settings_failed = 0;
    for r in settings.binlog.iter().chain([&settings.server_id]) {
        writeln!(out, "{r}")?;
        if r.status == Status::Fail {
            settings_failed += 1;
        }
    }

    let matched = crate::source::objects::captured_tables(&mut conn, cfg).await?;
    let snapshot_host = crate::source::snapshot::epoch::snapshot_host(m);
    let scope = Scope {
        named: cfg.captured_tables(),
        patterns: m.include.clone(),
        excludes: !m.exclude.is_empty(),
        matched,
        snapshot: cfg.snapshot.enabled(),
        snapshot_elsewhere: snapshot_host.host != m.host || snapshot_host.port != m.port,
    };
    let mut needs = required(server, &scope);

    let who = account(&m.user, &opts.user_host);
    let existing = show_grants(&mut conn, &who).await?;
    let password = match &existing {
        None => Password::New,
        Some(_) => match connect_as(m, &m.user, &m.password).await {
            Ok(c) => {
                let _ = c.disconnect().await;
                Password::Matches
            }
            Err(ConnectFailure::Refused(e)) if is_login_refused(&e) => {
                if opts.update_password {
                    Password::Update
                } else {
                    return Err(SetupError::PasswordDiffers { account: who });
                }
            }
            // Another reason (too many connections, …): the login is tried again at the end.
            Err(_) => Password::Matches,
        },
    };
    let lines = existing.unwrap_or_default();
    if grants_roles(&lines) {
        needs.notes.push(format!(
            "{who} has roles: their privileges do not show in SHOW GRANTS, so setup grants \
             what Sluice needs directly"
        ));
    }
    let lacking = missing(&needs, &parse_grants(&lines));
    let todo = statements(&who, &m.password, password, &lacking);

    writeln!(out, "\nuser {who}:")?;
    if todo.is_empty() {
        writeln!(
            out,
            "  nothing to change: it exists, MYSQL_PASSWORD logs in, and it holds every grant \
             Sluice needs"
        )?;
    }
    for s in &todo {
        if opts.dry_run {
            writeln!(out, "  would run: {}", s.shown)?;
            continue;
        }
        if let Err(e) = conn.query_drop(&s.sql).await {
            let code = match &e {
                mysql_async::Error::Server(se) => Some(se.code),
                _ => None,
            };
            // A statement that carries the password: the server's text may quote part of it
            // (escaped, or cut in a syntax error's `near '…'`), so only its code is shown.
            let message = match &e {
                mysql_async::Error::Server(se) if s.sql != s.shown => format!(
                    "ERROR {} ({}); the server's text is withheld because the statement carries the password",
                    se.code, se.state
                ),
                _ => e.to_string().replace(&m.password, "<MYSQL_PASSWORD>"),
            };
            return Err(SetupError::Statement {
                statement: s.shown.clone(),
                code,
                message,
            });
        }
        writeln!(out, "  ran: {}", s.shown)?;
    }
    for note in &needs.notes {
        writeln!(out, "  note: {note}")?;
    }
    let _ = conn.disconnect().await;

    if !opts.dry_run {
        match connect_as(m, &m.user, &m.password).await {
            Ok(c) => {
                let _ = c.disconnect().await;
                writeln!(out, "  {who} logs in with MYSQL_PASSWORD")?;
            }
            Err(f) => {
                return Err(f.into_error(m, |error| SetupError::UserCannotConnect {
                    account: who.clone(),
                    error,
                }))
            }
        }
    }

    writeln!(
        out,
        "\nconfiguration to use (or the same settings in a --config file):"
    )?;
    for line in configuration(cfg) {
        writeln!(out, "  {line}")?;
    }
    Ok(SetupOutcome {
        statements: todo.len(),
        settings_failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB: &str = "10.11.19-MariaDB-0+deb12u1-log";

    fn lines(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| (*s).to_owned()).collect()
    }

    fn table(s: &str, t: &str) -> (String, String) {
        (s.to_owned(), t.to_owned())
    }

    fn named(tables: &[(&str, &str)]) -> Scope {
        Scope {
            named: tables.iter().map(|(s, t)| table(s, t)).collect(),
            matched: tables.iter().map(|(s, t)| table(s, t)).collect(),
            ..Scope::default()
        }
    }

    fn shown(s: &[Statement]) -> Vec<&str> {
        s.iter().map(|s| s.shown.as_str()).collect()
    }

    #[test]
    fn versions_and_flavors() {
        let m = Server::parse(MARIADB);
        assert_eq!(m.flavor, Flavor::MariaDb);
        assert_eq!(m.version, (10, 11, 19));
        assert_eq!(m.to_string(), "MariaDB 10.11.19");
        let y = Server::parse("8.0.36");
        assert_eq!((y.flavor, y.version), (Flavor::MySql, (8, 0, 36)));
        assert_eq!(Server::parse("5.7.44-log").version, (5, 7, 44));
        assert_eq!(Server::parse("").version, (0, 0, 0));
        assert!(Server::parse("10.5.0-MariaDB").at_least(10, 5, 0));
        assert!(!Server::parse("10.4.34-MariaDB").at_least(10, 5, 0));
    }

    #[test]
    fn a_new_mariadb_user_gets_replication_and_select_on_each_named_table() {
        let needs = required(
            Server::parse(MARIADB),
            &named(&[("shop", "orders"), ("crm", "people")]),
        );
        let acc = account("cdc", "%");
        let todo = statements(&acc, "s3cret", Password::New, &missing(&needs, &[]));
        assert_eq!(
            shown(&todo),
            [
                "CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY <MYSQL_PASSWORD>",
                "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'cdc'@'%'",
                "GRANT SELECT ON `shop`.`orders` TO 'cdc'@'%'",
                "GRANT SELECT ON `crm`.`people` TO 'cdc'@'%'",
            ]
        );
        assert_eq!(
            todo[0].sql,
            "CREATE USER IF NOT EXISTS 'cdc'@'%' IDENTIFIED BY 's3cret'"
        );
        assert!(!format!("{todo:?}").contains("s3cret"));
        assert!(needs.notes.is_empty(), "{:?}", needs.notes);
        // Before 10.5 (and on MySQL) the privilege is REPLICATION CLIENT.
        let old = required(Server::parse("10.4.34-MariaDB"), &named(&[("shop", "o")]));
        assert_eq!(old.privileges[1].privilege, "REPLICATION CLIENT");
    }

    #[test]
    fn what_the_server_shows_after_setup_leaves_nothing_to_do() {
        let needs = required(Server::parse(MARIADB), &named(&[("shop", "orders")]));
        let shown = lines(&[
            "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'",
            "GRANT SELECT ON `shop`.`orders` TO `cdc`@`%`",
        ]);
        let held = parse_grants(&shown);
        assert_eq!(held.len(), 3, "{held:?}");
        assert!(missing(&needs, &held).is_empty());
        assert!(statements("'cdc'@'%'", "pw", Password::Matches, &[]).is_empty());
        // REPLICATION CLIENT counts as BINLOG MONITOR; a wider grant covers a narrower need.
        let wide =
            lines(&["GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`"]);
        assert!(missing(&needs, &parse_grants(&wide)).is_empty());
        let all = lines(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`%` WITH GRANT OPTION"]);
        assert!(missing(&needs, &parse_grants(&all)).is_empty());
        let schema = lines(&[
            "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%`",
            "GRANT ALL PRIVILEGES ON `shop`.* TO `cdc`@`%`",
        ]);
        assert!(missing(&needs, &parse_grants(&schema)).is_empty());
    }

    #[test]
    fn only_what_is_missing_is_granted_and_the_password_is_kept() {
        let needs = required(
            Server::parse(MARIADB),
            &named(&[("shop", "orders"), ("shop", "items")]),
        );
        let held = parse_grants(&lines(&[
            "GRANT USAGE ON *.* TO `cdc`@`%` IDENTIFIED BY PASSWORD '*AB'",
            "GRANT SELECT ON `shop`.`orders` TO `cdc`@`%`",
            // A column grant is not a table grant; another table is not this one.
            "GRANT SELECT (`id`, `name`) ON `shop`.`items` TO `cdc`@`%`",
            "GRANT SELECT ON `other`.`items` TO `cdc`@`%`",
            "GRANT REPLICATION SLAVE ON *.* TO `cdc`@`%`",
        ]));
        let todo = statements(
            "'cdc'@'%'",
            "pw",
            Password::Matches,
            &missing(&needs, &held),
        );
        assert_eq!(
            shown(&todo),
            [
                "GRANT BINLOG MONITOR ON *.* TO 'cdc'@'%'",
                "GRANT SELECT ON `shop`.`items` TO 'cdc'@'%'",
            ]
        );
        let update = statements("'cdc'@'%'", "n'ew\\pw", Password::Update, &[]);
        assert_eq!(
            shown(&update),
            ["ALTER USER 'cdc'@'%' IDENTIFIED BY <MYSQL_PASSWORD>"]
        );
        assert_eq!(
            update[0].sql,
            "ALTER USER 'cdc'@'%' IDENTIFIED BY 'n''ew\\\\pw'"
        );
    }

    #[test]
    fn patterns_grant_their_databases() {
        let scope = Scope {
            named: vec![table("crm", "people"), table("shop", "orders")],
            patterns: vec![
                TablePattern::parse("shop.*", "shop"),
                TablePattern::parse("audit_*", "billing"),
                TablePattern::parse("*.events", "shop"),
            ],
            excludes: false,
            matched: vec![
                table("crm", "people"),
                table("shop", "orders"),
                table("billing", "audit_1"),
                table("eu", "events"),
                table("us", "events"),
                table("shop", "events"),
            ],
            ..Scope::default()
        };
        let needs = required(Server::parse(MARIADB), &scope);
        let todo = statements("'cdc'@'%'", "pw", Password::Matches, &missing(&needs, &[]));
        assert_eq!(
            shown(&todo),
            [
                "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'cdc'@'%'",
                "GRANT SELECT ON `shop`.* TO 'cdc'@'%'",
                "GRANT SELECT ON `billing`.* TO 'cdc'@'%'",
                "GRANT SELECT ON `eu`.* TO 'cdc'@'%'",
                "GRANT SELECT ON `us`.* TO 'cdc'@'%'",
                "GRANT SELECT ON `crm`.`people` TO 'cdc'@'%'",
            ]
        );
        let notes = needs.notes.join("\n");
        assert!(
            notes.contains("*.events also match databases by name"),
            "{notes}"
        );
        assert!(notes.contains("(eu, us)"), "{notes}");
        assert!(
            notes.contains("also those the patterns leave out"),
            "{notes}"
        );
        // `db.*` alone, without excludes, needs no such note.
        let plain = Scope {
            patterns: vec![TablePattern::parse("*", "shop")],
            ..Scope::default()
        };
        assert!(required(Server::parse(MARIADB), &plain).notes.is_empty());
    }

    #[test]
    fn a_mariadb_replica_snapshot_host_needs_slave_monitor_and_its_gtid_state() {
        let mut scope = named(&[("shop", "orders")]);
        scope.snapshot = true;
        scope.snapshot_elsewhere = true;
        let needs = required(Server::parse(MARIADB), &scope);
        let todo = statements("'cdc'@'%'", "pw", Password::Matches, &missing(&needs, &[]));
        assert_eq!(
            shown(&todo),
            [
                "GRANT REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.* TO 'cdc'@'%'",
                "GRANT SELECT ON `mysql`.`gtid_slave_pos` TO 'cdc'@'%'",
                "GRANT SELECT ON `shop`.`orders` TO 'cdc'@'%'",
            ]
        );
        let notes = needs.notes.join("\n");
        assert!(notes.contains("by replication"), "{notes}");
        assert!(notes.contains("PROCESS"), "{notes}");
        // On the stream host itself, MariaDB's snapshot needs nothing more.
        scope.snapshot_elsewhere = false;
        let local = required(Server::parse(MARIADB), &scope);
        assert_eq!(local.privileges.len(), 3, "{:?}", local.privileges);
    }

    #[test]
    fn a_mysql_snapshot_needs_reload_or_lock_tables_and_xa_recover_admin_on_8() {
        let mut scope = named(&[("shop", "orders")]);
        let stream_only = required(Server::parse("8.0.36"), &scope);
        assert_eq!(
            shown(&statements(
                "'cdc'@'%'",
                "pw",
                Password::Matches,
                &missing(&stream_only, &[])
            )),
            [
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdc'@'%'",
                "GRANT SELECT ON `shop`.`orders` TO 'cdc'@'%'",
            ]
        );
        assert!(stream_only.notes[0].contains("INITIAL_SNAPSHOT=true"));

        scope.snapshot = true;
        let needs = required(Server::parse("8.0.36"), &scope);
        let todo = statements("'cdc'@'%'", "pw", Password::Matches, &missing(&needs, &[]));
        assert_eq!(
            shown(&todo),
            [
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT, RELOAD, XA_RECOVER_ADMIN ON *.* TO 'cdc'@'%'",
                "GRANT SELECT ON `shop`.`orders` TO 'cdc'@'%'",
            ]
        );
        // MySQL 8 shows dynamic privileges on a line of their own.
        let after = lines(&[
            "GRANT RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`",
            "GRANT XA_RECOVER_ADMIN ON *.* TO `cdc`@`%`",
            "GRANT SELECT ON `shop`.`orders` TO `cdc`@`%`",
        ]);
        assert!(missing(&needs, &parse_grants(&after)).is_empty());
        // LOCK TABLES on every captured schema stands in for RELOAD.
        let locks = lines(&[
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, XA_RECOVER_ADMIN ON *.* TO `cdc`@`%`",
            "GRANT SELECT, LOCK TABLES ON `shop`.* TO `cdc`@`%`",
        ]);
        assert!(missing(&needs, &parse_grants(&locks)).is_empty());
        // 5.7 has no XA_RECOVER_ADMIN.
        let five = required(Server::parse("5.7.44-log"), &scope);
        assert!(five
            .privileges
            .iter()
            .all(|n| n.privilege != "XA_RECOVER_ADMIN"));
    }

    #[test]
    fn grant_lines_parse_with_quotes_escapes_and_roles() {
        let held = parse_grants(&lines(&[
            "GRANT SELECT ON `we``ird`.`t ON x` TO `cdc`@`%`",
            "GRANT SELECT ON `my\\_db`.* TO `cdc`@`%`",
            "grant replication replica on *.* to 'cdc'@'%'",
            "GRANT EXECUTE ON PROCEDURE `db`.`p` TO `cdc`@`%`",
            "GRANT PROXY ON ''@'%' TO 'cdc'@'%'",
            "GRANT `reader`@`%` TO `cdc`@`%`",
        ]));
        assert_eq!(
            held,
            [
                Held {
                    privilege: "SELECT".into(),
                    level: Level::Table("we`ird".into(), "t ON x".into()),
                },
                Held {
                    privilege: "SELECT".into(),
                    level: Level::Schema("my_db".into()),
                },
                Held {
                    privilege: "REPLICATION SLAVE".into(),
                    level: Level::Global,
                },
            ]
        );
        assert!(grants_roles(&lines(&["GRANT `reader`@`%` TO `cdc`@`%`"])));
        assert!(!grants_roles(&lines(&["GRANT USAGE ON *.* TO `cdc`@`%`"])));
        assert_eq!(
            Level::Table("we`ird".into(), "t".into()).sql(),
            "`we``ird`.`t`"
        );
        assert_eq!(account("o'neil", "10.0.%"), "'o''neil'@'10.0.%'");
    }

    #[test]
    fn admin_credentials_come_from_the_environment_or_the_terminal() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let mut no_user = || -> std::io::Result<String> { panic!("asked for the user") };
        let mut no_pw = |_: &str| -> std::io::Result<String> { panic!("asked for the password") };
        let both = env(&[("MYSQL_ADMIN_USER", "root"), ("MYSQL_ADMIN_PASSWORD", "")]);
        let a = admin_from(&both, false, &mut no_user, &mut no_pw).unwrap();
        assert_eq!((a.user.as_str(), a.password.as_str()), ("root", ""));
        assert!(!format!("{a:?}").contains("password: \"\""));

        let none = env(&[("MYSQL_ADMIN_USER", " ")]);
        let e = admin_from(&none, false, &mut no_user, &mut no_pw).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "MYSQL_ADMIN_USER and MYSQL_ADMIN_PASSWORD not set, and stdin is not a terminal"
            ),
            "{e}"
        );
        let user_only = env(&[("MYSQL_ADMIN_USER", "root")]);
        let e = admin_from(&user_only, false, &mut no_user, &mut no_pw).unwrap_err();
        assert!(
            e.to_string().starts_with("MYSQL_ADMIN_PASSWORD not set"),
            "{e}"
        );

        // On a terminal, what is missing is asked for; an empty user is root.
        let mut asked = Vec::new();
        let a = admin_from(
            &none,
            true,
            &mut || -> std::io::Result<String> { Ok("\n".to_owned()) },
            &mut |u: &str| -> std::io::Result<String> {
                asked.push(u.to_owned());
                Ok("typed".to_owned())
            },
        )
        .unwrap();
        assert_eq!((a.user.as_str(), a.password.as_str()), ("root", "typed"));
        assert_eq!(asked, ["root"]);
    }

    #[test]
    fn the_configuration_names_every_setting_but_the_password() {
        let env = |k: &str| match k {
            "MYSQL_HOST" => Some("db.internal".to_owned()),
            "MYSQL_USER" => Some("cdc".to_owned()),
            "MYSQL_PASSWORD" => Some("s3cret".to_owned()),
            "MYSQL_DATABASE" => Some("shop".to_owned()),
            "MYSQL_TABLE" => Some("orders,*".to_owned()),
            "MYSQL_INCLUDE" => Some("crm.people".to_owned()),
            "MYSQL_EXCLUDE" => Some("tmp_*".to_owned()),
            "MYSQL_SERVER_ID" => Some("77".to_owned()),
            _ => None,
        };
        let cfg = Config::load(None, &env).unwrap();
        let text = configuration(&cfg).join("\n");
        assert_eq!(
            text,
            "export MYSQL_HOST=db.internal\n\
             export MYSQL_PORT=3306\n\
             export MYSQL_USER=cdc\n\
             export MYSQL_DATABASE=shop\n\
             export MYSQL_TABLE='orders,*'\n\
             export MYSQL_INCLUDE=crm.people\n\
             export MYSQL_EXCLUDE='shop.tmp_*'\n\
             export MYSQL_SERVER_ID=77\n\
             export MYSQL_PASSWORD=...   # the password given to setup in MYSQL_PASSWORD (never printed)"
        );
        assert!(!text.contains("s3cret"));
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    #[test]
    fn denied_errors_are_told_apart() {
        let e = SetupError::Statement {
            statement: "GRANT …".into(),
            code: Some(1045),
            message: "denied".into(),
        };
        assert!(e.is_privilege_denied() && e.after_changes());
        let e = SetupError::Statement {
            statement: "GRANT …".into(),
            code: Some(1064),
            message: "syntax".into(),
        };
        assert!(!e.is_privilege_denied());
        assert!(!SetupError::EmptyPassword.after_changes());
    }
}
