//! `pgentra`: Entra ID tokens and connection strings for Azure Database for PostgreSQL.

use pgentra::{Connector, CredentialKind, Error, ErrorKind, Format, Options};
use serde_json::json;
use std::process::ExitCode;

mod pgpass;
mod proxy;

const USAGE: &str = "pgentra: passwordless Azure Database for PostgreSQL with Microsoft Entra ID

Usage: pgentra [--prefix P] [--credential KIND] COMMAND [ARGS]

Commands:
  token [--json]              print the access token (--json: with expiry, credential, claims)
  dsn [--format F]            print the connection string with the token or password
                              F: libpq (default), uri, ado, jdbc, json, shell, pdo
  env                         print `export PG...=...` lines for eval
  exec -- CMD [ARGS...]       run CMD with PGHOST, PGUSER, PGPASSWORD, ... set
  check [--json]              diagnose configuration, credential, token and a real connection
  grant --role NAME [--schema S]
                              as the owner (server and database from the Service Connector
                              variables, PGHOST/PGPORT/PGDATABASE or --host/--port/--dbname;
                              PGUSER or --user, password from PGPASSWORD or a prompt) grant ALL
                              on the schema's tables and sequences to NAME
  proxy [--listen ADDR] [--unix-socket DIR] [--allow-uid UID] [--max-sessions N]
                              a local PostgreSQL endpoint without passwords: each session is
                              logged in upstream over TLS with a current token
  pgpass [--file PATH] [--service NAME]
                              write or refresh host:port:dbname:user:token in ~/.pgpass (0600)
                              and the [NAME] section of ~/.pg_service.conf with its sslmode:
                              connect with `psql service=NAME`
  cache status [--json]       whether tokens are shared with this user's other processes, where
  cache clear                 remove this user's shared token entries
  help [COMMAND]              this text, or one command's

Options:
  --prefix P        Service Connector variable prefix (default AZURE_POSTGRESQL)
  --credential K    force a credential: password, client-secret, client-certificate,
                    workload-identity, managed-identity, azure-cli, azd (or PGENTRA_CREDENTIAL)

Environment: AZURE_POSTGRESQL_CONNECTIONSTRING or AZURE_POSTGRESQL_HOST/_PORT/_DATABASE/_USER,
  _CLIENTID, _TENANTID, _CLIENTSECRET; AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET,
  AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE; PGENTRA_SCOPE, AZURE_AUTHORITY_HOST,
  PGENTRA_ALLOW_INSECURE=1, PGENTRA_ALLOW_UNVERIFIED_TLS=1 (keep sslmode=require for Azure servers), PGENTRA_TIMEOUT (seconds), PGENTRA_LOG=debug;
  PGENTRA_SHARED_CACHE=0 (no token cache shared between processes), PGENTRA_CACHE_DIR.

Exit codes: 0 ok, 2 usage, 3 configuration, 4 credential, 5 identity service, 6 network,
  7 TLS policy, 8 database, 9 internal.
";

const CACHE_HELP: &str = "pgentra cache status [--json] | pgentra cache clear

Tokens are shared by the processes of one user on one machine: one file per identity and
scope (mode 0600) in PGENTRA_CACHE_DIR, else $XDG_RUNTIME_DIR/pgentra, else
<temp>/pgentra-<uid>. The folder must belong to this user and be closed to group and others
(0700), on a local file system; otherwise each process keeps its own cache. Entries hold a
token, its expiry and refresh point and when it was fetched, never a secret.
PGENTRA_SHARED_CACHE=0 turns sharing off.

  status   whether this configuration's token is shared, the entry's path, or why not
  clear    remove this user's entries (the next process asks the identity service again)
";

fn help_for(cmd: &str) -> &'static str {
    match cmd {
        "token" => "pgentra token [--json]\n\nPrints the current access token for the configured identity. With --json, prints one\nJSON object with these fields:\n  token          the access token (a secret: keep it out of logs)\n  expires_on     when it expires (Unix seconds, this host's clock)\n  refresh_at     when pgentra will refresh it (Unix seconds)\n  credential     the credential that acquired it (managed-identity, azure-cli, ...)\n  detail         which endpoint or identity, in words\n  claims         what the token says (null if it cannot be read):\n    claims.aud         audience (https://ossrdbms-aad.database.windows.net)\n    claims.tid         tenant id\n    claims.oid         object id of the identity\n    claims.appid       application (client) id\n    claims.user        the database user name derived from the claims\n    claims.user_claim  which claim it came from (upn, unique_name, ...)\n    claims.exp         expiry in the token itself (Unix seconds)\nExit codes as in `pgentra help`.\n",
        "dsn" => "pgentra dsn [--format F]\n\nPrints the connection string with a current token (or the configured password), as F:\n  libpq   host=... port=... dbname=... user=... password=... sslmode=... (the default)\n  uri     postgresql://user:password@host:port/dbname?sslmode=...\n  ado     Server=...;Port=...;Database=...;User Id=...;Password=...;Ssl Mode=...; (Npgsql)\n  jdbc    jdbc:postgresql://host:port/dbname?sslmode=...&user=...&password=... (pgJDBC)\n  json    one JSON object: host, port, dbname, user, password, sslmode, ...\n  shell   export PGHOST='...' PGPORT='...' ... PGPASSWORD='...' (what `pgentra env` prints)\n  pdo     pgsql:host=...;port=...;dbname=...;user=...;password=...;sslmode=... (PHP PDO)\n",
        "env" => "pgentra env\n\nPrints `export PGHOST=... PGPORT=... PGDATABASE=... PGUSER=... PGPASSWORD=... PGSSLMODE=...`,\nevery value single-quoted. Use: eval \"$(pgentra env)\"\n",
        "exec" => "pgentra exec -- CMD [ARGS...]\n\nRuns CMD with the libpq variables set (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD,\nPGSSLMODE), e.g. pgentra exec -- psql -c 'select 1'. Exits with CMD's status.\n",
        "check" => "pgentra check [--json]\n\nShows where the configuration came from, which credential won, the token's audience, expiry,\nobject id and derived user (never the token), the TLS mode, whether the token cache is shared\nwith this user's other processes (the entry, or why not), then connects and runs\n`select current_user`. Exits non-zero with a diagnosis when anything is wrong.\n",
        "grant" => "pgentra grant --role NAME [--schema public] [--host H] [--port P] [--dbname D] [--user U]\n\nConnects as the tables' owner, runs GRANT ALL PRIVILEGES ON ALL TABLES and ALL SEQUENCES IN\nSCHEMA to the role (identifiers quoted), and prints the tables the role can now use.\nServer and database: the flags, else PGHOST, PGPORT, PGDATABASE (and PGSSLMODE), else the\nService Connector variables (AZURE_POSTGRESQL_CONNECTIONSTRING in any dialect, or _HOST,\n_PORT, _DATABASE; --prefix P for another prefix); sslmode at least require. The owner: --user\nor PGUSER (never the application's AZURE_POSTGRESQL_USER), password from PGPASSWORD or a prompt.\n",
        "proxy" => PROXY_HELP,
        "pgpass" => PGPASS_HELP,
        "cache" => CACHE_HELP,
        _ => USAGE,
    }
}

const PROXY_HELP: &str = "pgentra proxy [--listen HOST:PORT]... [--unix-socket DIR [--port P]] [--allow-uid UID]...
              [--allow-remote] [--local-password-file F] [--max-sessions N] [--drain-timeout SECS]
              [--connect-timeout SECS] [--threads N]

A local PostgreSQL endpoint for clients that cannot fetch tokens: they connect without a
password; for each session the proxy opens a TLS connection to the configured server (sslmode
semantics of libpq: require encrypts, verify-ca/verify-full also verify), logs in as the
configured (or token-derived) user with a current token from the shared cache, then relays the
session's bytes unchanged. A refused token (SQLSTATE 28P01, e.g. after a rotation) is dropped
from the cache and the login is retried once with a fresh one.

  --listen HOST:PORT      TCP address (default 127.0.0.1:6432; repeatable). Loopback only
                          unless --allow-remote.
  --unix-socket DIR       also (or only) listen on DIR/.s.PGSQL.PORT, as PostgreSQL names it,
                          so `psql -h DIR -p PORT` works; PORT is --port, else the first
                          --listen port, else 6432. The socket has mode 0600 from the moment
                          it exists (bound in a private directory, then renamed into place).
  --allow-uid UID         serve Unix-socket clients whose uid (SO_PEERCRED) is UID (repeatable;
                          default: the proxy's own effective uid; when given, only the listed
                          uids). Others get FATAL 28000 before anything is read and never reach
                          the server. TCP clients on loopback are not checked: for one local
                          user only, use --unix-socket without --listen.
  --allow-remote          allow a non-loopback --listen address (use --local-password-file:
                          otherwise anyone who reaches it logs in as this identity)
  --local-password-file F clients must send the password on F's first line (the proxy asks
                          with AuthenticationCleartextPassword)
  --drain-timeout SECS    on SIGTERM/SIGINT stop accepting and let sessions finish for up to
                          SECS (default 30), then close them; a second signal closes them now
  --max-sessions N        at most N concurrent sessions (default 200); one more gets FATAL
                          53300 (too_many_connections) and is closed; a cancel request is still
                          forwarded. The slot is free again when a session ends.
  --connect-timeout SECS  upstream connect and TLS timeout (default connect_timeout or 15)
  --threads N             worker threads (default: one per CPU)

Clients: `psql -h 127.0.0.1 -p 6432 -d postgres` (sslmode prefer or disable: the proxy declines
SSLRequest and GSSENCRequest on loopback; sslmode=require fails). The client's user name is
ignored (the proxy logs in as the connector's user); the database is the client's, else the
configured one; other startup parameters (application_name, client_encoding, options, ...)
pass through. Cancel requests (Ctrl-C in psql) are forwarded to the session's server over TLS.
Upstream authentication: cleartext password (Azure's, for tokens), MD5 (secret mode only),
SCRAM-SHA-256 without channel binding.

Logs: one line per session on stderr (client, client_user, user, database, application_name,
duration_ms, bytes_from_client, bytes_to_client, token_retry, outcome, detail), never a token
or password.

Exit codes: 0 after a graceful stop, 2 usage, 3 configuration (including a non-loopback address
without --allow-remote), 4 credential, 5 identity service, 6 network (cannot listen), 7 TLS
policy (a token would travel without TLS).
";

const PGPASS_HELP: &str = r#"pgentra pgpass [--file PATH] [--service NAME] [--service-file PATH]

Writes the line `host:port:dbname:user:token` (the configured password in secret mode) to the
libpq password file PATH (default: $PGPASSFILE, else ~/.pgpass), and the section [NAME]
(default: pgentra) of the connection service file (default: $PGSERVICEFILE, else
~/.pg_service.conf) with host, port, dbname, user, sslmode, sslrootcert (when configured) and
passfile. A password-file line carries no sslmode, and libpq's default (prefer) would send the
token in cleartext to a server that declines TLS; so connect through the service, which keeps
the TLS mode pgentra decided (even over PGSSLMODE):

    psql service=pgentra            (or PGSERVICE=pgentra psql)

A mode that does not guarantee TLS (disable, allow, prefer) is refused unless
PGENTRA_ALLOW_INSECURE=1. `:` and `\` in a field are escaped with `\`; without a configured
database the dbname field is `*`. A line for the same host:port:dbname:user is replaced in place
(before any wildcard line that would otherwise win) and the [NAME] section is replaced; other
lines, sections and comments are kept. Neither file is followed if it is a symbolic link (it is
refused). Both are replaced atomically (temporary file, fsync, rename; the password file with
mode 0600, which also tightens a looser mode) while holding a lock on .pgpass.lock (and
.pg_service.conf.lock) next to them, so concurrent runs keep each other's lines. The token is
never printed.

Tokens expire (about 60-90 minutes); refresh the line periodically:

  cron (every 15 minutes; the variables pgentra needs, NAME=value lines, in a file):
    */15 * * * * set -a; . "$HOME/.config/pgentra.env"; /usr/local/bin/pgentra pgpass >/dev/null

  systemd (user units; `systemctl --user enable --now pgentra-pgpass.timer`):
    # ~/.config/systemd/user/pgentra-pgpass.service
    [Unit]
    Description=Refresh the Entra ID token in ~/.pgpass
    [Service]
    Type=oneshot
    EnvironmentFile=%h/.config/pgentra.env
    ExecStart=/usr/local/bin/pgentra pgpass

    # ~/.config/systemd/user/pgentra-pgpass.timer
    [Unit]
    Description=Refresh the Entra ID token in ~/.pgpass every 15 minutes
    [Timer]
    OnActiveSec=0
    OnUnitActiveSec=15min
    [Install]
    WantedBy=timers.target

Exit codes: 0 ok, 2 usage, 3 configuration (including a file that cannot be written),
4 credential, 5 identity service, 6 network.
"#;

fn exit_code(e: &Error) -> u8 {
    match e.kind() {
        ErrorKind::Config => 3,
        ErrorKind::Credential => 4,
        ErrorKind::IdentityService => 5,
        ErrorKind::Network => 6,
        ErrorKind::TlsPolicy => 7,
        ErrorKind::Database => 8,
        ErrorKind::Internal => 9,
    }
}

struct Usage(String);

fn main() -> ExitCode {
    pgentra::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err(Failure::Usage(Usage(msg))) => {
            eprintln!("pgentra: {msg}\nRun `pgentra help` for usage.");
            ExitCode::from(2)
        }
        Err(Failure::Error(e)) => {
            eprintln!("{e}");
            if let Some(code) = e.code() {
                eprintln!("service code: {code}");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

enum Failure {
    Usage(Usage),
    Error(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

fn usage<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Usage(Usage(msg.into())))
}

fn run(args: Vec<String>) -> Result<u8, Failure> {
    let mut options = Options::default();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--prefix" => {
                options.prefix = Some(args.get(i + 1).cloned().ok_or(()).or_else(|_| usage("--prefix needs a value"))?);
                i += 2;
            }
            "--credential" => {
                let v = args.get(i + 1).cloned().ok_or(()).or_else(|_| usage("--credential needs a value"))?;
                options.credential = Some(CredentialKind::parse(&v)?);
                i += 2;
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(0);
            }
            "--version" | "-V" => {
                println!("pgentra {}", env!("CARGO_PKG_VERSION"));
                return Ok(0);
            }
            _ => break,
        }
    }
    let Some(cmd) = args.get(i).cloned() else {
        eprint!("{USAGE}");
        return Ok(2);
    };
    let rest: Vec<String> = args[i + 1..].to_vec();
    if rest.iter().any(|a| a == "--help" || a == "-h") && cmd != "exec" {
        print!("{}", help_for(&cmd));
        return Ok(0);
    }
    match cmd.as_str() {
        "help" => {
            print!("{}", help_for(rest.first().map(String::as_str).unwrap_or("")));
            Ok(0)
        }
        "token" => cmd_token(options, &rest),
        "dsn" => cmd_dsn(options, &rest),
        "env" => {
            no_args(&rest)?;
            let c = Connector::new(options)?;
            println!("{}", c.connection_string(Format::Shell)?);
            Ok(0)
        }
        "exec" => cmd_exec(options, &rest),
        "check" => cmd_check(options, &rest),
        "grant" => cmd_grant(&options, &rest),
        "proxy" => proxy::cmd(options, &rest),
        "pgpass" => pgpass::cmd(options, &rest),
        "cache" => cmd_cache(options, &rest),
        other => usage(format!("unknown command '{other}'")),
    }
}

fn no_args(rest: &[String]) -> Result<(), Failure> {
    if let Some(a) = rest.first() {
        return usage(format!("unexpected argument '{a}'"));
    }
    Ok(())
}

fn flag_json(rest: &[String]) -> Result<bool, Failure> {
    match rest {
        [] => Ok(false),
        [j] if j == "--json" => Ok(true),
        [a, ..] => usage(format!("unexpected argument '{a}'")),
    }
}

fn claims_json(info: &pgentra::TokenInfo) -> serde_json::Value {
    match &info.claims {
        None => serde_json::Value::Null,
        Some(c) => {
            let user = c.user_name();
            json!({
                "aud": c.aud, "tid": c.tid, "oid": c.oid, "appid": c.appid,
                "user": user.as_ref().map(|u| &u.0), "user_claim": user.as_ref().map(|u| u.1),
                "exp": c.exp,
            })
        }
    }
}

fn cmd_token(options: Options, rest: &[String]) -> Result<u8, Failure> {
    let json_out = flag_json(rest)?;
    let c = Connector::new(options)?;
    let token = c.token()?;
    if json_out {
        let info = c.token_info()?;
        let v = json!({
            "token": token.expose(),
            "expires_on": info.expires_on,
            "refresh_at": info.refresh_at,
            "credential": info.credential.as_str(),
            "detail": info.detail,
            "claims": claims_json(&info),
        });
        println!("{v}");
    } else {
        println!("{}", token.expose());
    }
    Ok(0)
}

fn cmd_dsn(options: Options, rest: &[String]) -> Result<u8, Failure> {
    let mut format = Format::Libpq;
    let mut i = 0;
    while i < rest.len() {
        match rest[i].as_str() {
            "--format" | "-f" => {
                let v = rest.get(i + 1).ok_or(()).or_else(|_| usage("--format needs a value"))?;
                format = Format::parse(v)?;
                i += 2;
            }
            s if s.starts_with("--format=") => {
                format = Format::parse(&s["--format=".len()..])?;
                i += 1;
            }
            a => return usage(format!("unexpected argument '{a}'")),
        }
    }
    let c = Connector::new(options)?;
    println!("{}", c.connection_string(format)?);
    Ok(0)
}

fn cmd_exec(options: Options, rest: &[String]) -> Result<u8, Failure> {
    let cmd: &[String] = match rest.first().map(String::as_str) {
        Some("--") => &rest[1..],
        _ => rest,
    };
    let Some(program) = cmd.first() else {
        return usage("exec needs a command: pgentra exec -- psql -c 'select 1'");
    };
    let c = Connector::new(options)?;
    let params = c.params()?;
    let mut command = std::process::Command::new(program);
    command.args(&cmd[1..]);
    for (k, v) in params.to_pg_env() {
        command.env(k, v);
    }
    let status = command
        .status()
        .map_err(|e| Error::config(format!("cannot run '{program}': {e}")))?;
    Ok(status.code().map(|c| c.clamp(0, 255) as u8).unwrap_or(1))
}

fn cmd_check(options: Options, rest: &[String]) -> Result<u8, Failure> {
    let json_out = flag_json(rest)?;
    let mut report = serde_json::Map::new();
    let mut lines: Vec<String> = Vec::new();
    let outcome = check_steps(options, &mut report, &mut lines);
    let (ok, code, diagnosis) = match &outcome {
        Ok(()) => (true, 0u8, None),
        Err(e) => (false, exit_code(e), Some(e.to_string())),
    };
    if json_out {
        report.insert("ok".into(), json!(ok));
        if let Some(d) = &diagnosis {
            report.insert("diagnosis".into(), json!(d));
        }
        if let Err(e) = &outcome {
            report.insert("error_kind".into(), json!(e.kind().as_str()));
            report.insert("service_code".into(), json!(e.code()));
        }
        println!("{}", serde_json::Value::Object(report));
    } else {
        for l in &lines {
            println!("{l}");
        }
        match &diagnosis {
            None => println!("OK: connected as the expected role over TLS"),
            Some(d) => println!("FAILED: {d}"),
        }
    }
    Ok(code)
}

fn check_steps(options: Options, report: &mut serde_json::Map<String, serde_json::Value>, lines: &mut Vec<String>) -> Result<(), Error> {
    let c = Connector::new(options)?;
    let cfg = c.config();
    let source = match &cfg.sources.connection_string {
        Some((var, d)) => format!("{var} ({})", d.as_str()),
        None => "discrete variables".to_string(),
    };
    let mut vars = cfg.sources.discrete.clone();
    vars.sort();
    lines.push(format!("configuration: {source}{}", if vars.is_empty() { String::new() } else { format!(" + {}", vars.join(", ")) }));
    let p = &cfg.params;
    lines.push(format!(
        "server: host={} port={} dbname={} sslmode={} cloud={}",
        p.host.as_deref().unwrap_or("?"),
        p.port.unwrap_or(5432),
        p.dbname.as_deref().unwrap_or("(default)"),
        p.sslmode.map(|s| s.as_str()).unwrap_or("require"),
        cfg.cloud.as_str()
    ));
    report.insert("configuration".into(), json!({"source": source, "variables": vars}));
    report.insert("server".into(), json!({"host": p.host, "port": p.port, "dbname": p.dbname, "sslmode": p.sslmode.map(|s| s.as_str()), "cloud": cfg.cloud.as_str()}));
    let tls_ok = p.sslmode.map(|s| s.guarantees_tls()).unwrap_or(true);
    let decision = c.tls_decision();
    match &decision {
        Ok(d) => {
            lines.push(format!(
                "tls: sslmode={}{} (rule {}): {}",
                d.sslmode.as_str(),
                d.rootcert.as_deref().map(|r| format!(" sslrootcert={r}")).unwrap_or_default(),
                d.rule.as_str(),
                d.explanation
            ));
            report.insert(
                "tls".into(),
                json!({"required": tls_ok, "sslmode": d.sslmode.as_str(), "sslrootcert": d.rootcert, "rule": d.rule.as_str(),
                       "raised_from": d.raised_from.map(|m| m.as_str()), "explanation": d.explanation,
                       "allow_insecure": cfg.allow_insecure, "allow_unverified_tls": cfg.allow_unverified_tls}),
            );
        }
        Err(e) => {
            lines.push(format!("tls: REFUSED: {}", e.message()));
            report.insert("tls".into(), json!({"required": tls_ok, "rule": "refused", "explanation": e.message(), "allow_insecure": cfg.allow_insecure}));
        }
    }
    decision?;

    let (dir, entry, reason) = shared_status(&c);
    lines.push(shared_line(&dir, &entry, &reason));
    report.insert("shared_cache".into(), json!({"enabled": entry.is_some(), "dir": dir, "entry": entry, "reason": reason}));
    if c.is_password_mode() {
        lines.push("credential: password from the configuration (secret mode); no identity request".into());
        report.insert("credential".into(), json!({"kind": "password"}));
    } else {
        let expected = pgentra::cloud::resource_of(cfg.cloud.scope()).to_string();
        let info = c.token_info()?;
        let now = pgentra::identity::now_unix();
        lines.push(format!("credential: {} — {}", info.credential.as_str(), info.detail));
        lines.push(format!("token: expires in {} s (refresh in {} s)", info.expires_on - now, info.refresh_at - now));
        let claims = info.claims.clone().unwrap_or_default();
        let aud = claims.aud.clone().unwrap_or_default();
        let aud_ok = aud.trim_end_matches('/') == expected.trim_end_matches('/');
        let derived = claims.user_name();
        lines.push(format!(
            "token claims: aud={} ({}), tid={}, oid={}, user from token={}",
            aud,
            if aud_ok { "ok" } else { "WRONG" },
            claims.tid.as_deref().unwrap_or("-"),
            claims.oid.as_deref().unwrap_or("-"),
            derived.as_ref().map(|(u, k)| format!("{u} ({k})")).unwrap_or_else(|| "-".into())
        ));
        report.insert("credential".into(), json!({"kind": info.credential.as_str(), "detail": info.detail}));
        report.insert("token".into(), json!({"expires_on": info.expires_on, "refresh_at": info.refresh_at, "claims": claims_json(&info), "audience_ok": aud_ok, "expected_audience": expected}));
        if !aud_ok {
            return Err(Error::new(
                ErrorKind::IdentityService,
                format!("the token's audience is '{aud}', not '{expected}' (with or without a trailing slash): the server will refuse it; the token was requested for the wrong resource: unset PGENTRA_SCOPE or set it to {expected}/.default"),
            ));
        }
        if let (Some(configured), Some((from_token, claim))) = (&cfg.params.user, &derived) {
            let bare = configured.split('@').next().unwrap_or(configured);
            if bare != from_token && configured != from_token {
                lines.push(format!("warning: the configured user '{configured}' differs from the token's identity '{from_token}' ({claim})"));
                report.insert("user_warning".into(), json!(format!("configured user '{configured}' differs from the token's '{from_token}'")));
            }
        }
    }
    let params = c.params()?;
    let user = params.user.clone().unwrap_or_default();
    let rt = pgentra::runtime::runtime()?;
    let got = rt.block_on(async move { pgentra::db::current_user(&params).await })?;
    lines.push(format!("connection: select current_user = {got}"));
    report.insert("connection".into(), json!({"current_user": got, "user": user}));
    if got != user && !user.starts_with(&format!("{got}@")) {
        return Err(Error::new(ErrorKind::Database, format!("connected as '{got}' but the configured user is '{user}'")));
    }
    Ok(())
}

fn cmd_cache(options: Options, rest: &[String]) -> Result<u8, Failure> {
    match rest.first().map(String::as_str) {
        Some("clear") => {
            no_args(&rest[1..])?;
            match pgentra::shared_cache::clear() {
                Ok((dir, n)) => {
                    println!("removed {n} shared token entr{} from {}", if n == 1 { "y" } else { "ies" }, dir.display());
                    Ok(0)
                }
                Err(reason) => Err(Error::config(format!("cannot clear the shared token cache: {reason}")).into()),
            }
        }
        Some("status") => {
            let json_out = flag_json(&rest[1..])?;
            let c = Connector::new(options)?;
            let (dir, entry, reason) = shared_status(&c);
            if json_out {
                println!("{}", json!({"enabled": entry.is_some(), "dir": dir, "entry": entry, "reason": reason}));
            } else {
                println!("{}", shared_line(&dir, &entry, &reason));
            }
            Ok(0)
        }
        Some(other) => usage(format!("unknown cache command '{other}' (status or clear)")),
        None => usage("cache needs a command: status or clear"),
    }
}

/// The shared cache's folder, this connector's entry when shared, and why not.
fn shared_status(c: &Connector) -> (Option<String>, Option<String>, Option<String>) {
    let dir = pgentra::shared_cache::dir_path().display().to_string();
    match c.shared_cache() {
        Ok(entry) => (Some(dir), Some(entry.display().to_string()), None),
        Err(reason) => (Some(dir), None, Some(reason)),
    }
}

fn shared_line(dir: &Option<String>, entry: &Option<String>, reason: &Option<String>) -> String {
    match (entry, reason) {
        (Some(e), _) => format!("shared cache: on, entry {e}"),
        (None, r) => format!(
            "shared cache: off ({}); folder {}; this process keeps its own cache",
            r.as_deref().unwrap_or("unknown"),
            dir.as_deref().unwrap_or("-")
        ),
    }
}

fn cmd_grant(options: &Options, rest: &[String]) -> Result<u8, Failure> {
    let mut role = None;
    let mut schema = "public".to_string();
    let mut flags = pgentra::ConnParams::default();
    let mut i = 0;
    while i < rest.len() {
        let v = rest.get(i + 1).cloned();
        let need = |v: Option<String>, f: &str| v.ok_or(()).or_else(|_| usage(format!("{f} needs a value")));
        match rest[i].as_str() {
            "--role" => role = Some(need(v, "--role")?),
            "--schema" => schema = need(v, "--schema")?,
            "--host" => flags.host = Some(need(v, "--host")?),
            "--port" => {
                let s = need(v, "--port")?;
                flags.port = Some(s.parse().map_err(|_| Error::config(format!("--port '{s}' is not a port number")))?);
            }
            "--dbname" => flags.dbname = Some(need(v, "--dbname")?),
            "--user" => flags.user = Some(need(v, "--user")?),
            a => return usage(format!("unexpected argument '{a}'")),
        }
        i += 2;
    }
    let Some(role) = role else {
        return usage("grant needs --role NAME");
    };
    let p = grant_params(options, flags, &pgentra::config::ProcessEnv)?;
    grant_as_owner(p, role, schema)
}

/// The owner's connection for `grant`: the server and database from the flags, else the libpq
/// variables (PGHOST, PGPORT, PGDATABASE, PGSSLMODE), else the Service Connector variables (any
/// connection string dialect, or the discrete ones, through the core's discovery); the owner's
/// user from --user or PGUSER, never the application's.
fn grant_params(options: &Options, flags: pgentra::ConnParams, vars: &dyn pgentra::Env) -> Result<pgentra::ConnParams, Failure> {
    let env = |k: &str| vars.get(k).filter(|v| !v.is_empty());
    let mut p = pgentra::ConnParams::default();
    let mut from_connector = false;
    if let Some((sc, _)) = pgentra::Config::server(options, vars)? {
        p.host = sc.host;
        p.port = sc.port;
        p.dbname = sc.dbname;
        p.sslmode = sc.sslmode;
        from_connector = true;
    }
    let mut libpq = pgentra::ConnParams { host: env("PGHOST"), dbname: env("PGDATABASE"), user: env("PGUSER"), ..Default::default() };
    if let Some(port) = env("PGPORT") {
        libpq.port = Some(port.parse().map_err(|_| Error::config(format!("PGPORT '{port}' is not a port number")))?);
    }
    if let Some(mode) = env("PGSSLMODE") {
        libpq.sslmode = Some(pgentra::SslMode::parse(&mode).ok_or_else(|| Error::config(format!("PGSSLMODE '{mode}' is not an sslmode")))?);
    }
    p.overlay(libpq);
    p.overlay(flags);
    let prefix = options.prefix.clone().unwrap_or_else(|| pgentra::DEFAULT_PREFIX.to_string());
    if p.host.is_none() {
        return Err(Error::config(format!("grant needs the server: set {prefix}_CONNECTIONSTRING or {prefix}_HOST, PGHOST, or pass --host")).into());
    }
    if p.user.is_none() {
        let hint = if from_connector { format!(" ({prefix}_USER is the application's identity, not the owner)") } else { String::new() };
        return Err(Error::config(format!("grant needs the tables' owner: set PGUSER or pass --user{hint}")).into());
    }
    if p.sslmode.is_none() {
        p.sslmode = Some(pgentra::SslMode::Require);
    }
    if let Some(root) = env("PGSSLROOTCERT") {
        p.extra.push(("sslrootcert".into(), root));
    }
    Ok(p)
}

fn grant_as_owner(mut p: pgentra::ConnParams, role: String, schema: String) -> Result<u8, Failure> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let password = match env("PGPASSWORD") {
        Some(pw) => pw,
        None => rpassword::prompt_password(format!("Password for {}: ", p.user.as_deref().unwrap_or("owner")))
            .map_err(|e| Error::config(format!("no PGPASSWORD and cannot prompt for the owner's password: {e}")))?,
    };
    p.password = Some(pgentra::Secret::new(password));
    // The owner's password (or token) gets the same TLS policy as a token of ours.
    pgentra::tls::secure(&mut p, pgentra::TlsPolicy::from_env(), true)?;
    let rt = pgentra::runtime::runtime()?;
    let tables = rt.block_on(async move { pgentra::db::grant(&p, &role, &schema).await })?;
    println!("granted; tables the role can use ({}):", tables.len());
    for t in tables {
        println!("  {t}");
    }
    Ok(0)
}
