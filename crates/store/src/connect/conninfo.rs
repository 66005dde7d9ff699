//! Reading libpq's TLS options out of a connection string.
//!
//! tokio-postgres parses connection strings itself but knows only `sslmode=disable|prefer|
//! require` and no certificate options, and it rejects every key it does not know. So this
//! module walks the string with the same grammar tokio-postgres uses (URL or keyword/value
//! form), takes out the TLS options pgforce implements, and hands back the rest untouched
//! for tokio-postgres to parse. When an option cannot be honoured (an unknown `sslmode`, a
//! libpq option pgforce does not implement) the whole string goes to tokio-postgres as it
//! was: it rejects the TLS option it does not know, and [`ConnInfo::problem`] says in
//! libpq's words what was wrong, so the error names the value instead of a bare "invalid
//! connection string".
//!
//! Pure: no file is read here; paths are only recorded (see `tls` for reading them).

use std::fmt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

/// The URL prefixes tokio-postgres (like libpq) recognises.
const URL_PREFIXES: [&str; 2] = ["postgresql://", "postgres://"];

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
    /// Plain connection only.
    Disable,
    /// Plain first; TLS when the server refuses the plain session.
    Allow,
    /// TLS first; plain when the server does not offer TLS or the handshake fails.
    Prefer,
    /// TLS; the certificate is checked only when a root certificate is available.
    Require,
    /// TLS; the chain must lead to a root certificate, the host name is not checked.
    VerifyCa,
    /// TLS; chain and host name are checked.
    VerifyFull,
}

impl SslMode {
    /// The values libpq accepts, in its order.
    const VALUES: &'static str = "disable, allow, prefer, require, verify-ca or verify-full";

    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// Whether a missing root certificate is an error (libpq's `verify-*` modes).
    pub(super) fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        })
    }
}

/// Where the root certificates for server verification come from (`sslrootcert`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RootCert {
    /// Not given: `~/.postgresql/root.crt` when it exists, as libpq.
    Default,
    /// A PEM file.
    File(PathBuf),
    /// `sslrootcert=system`: the platform's trusted roots.
    System,
}

/// A TLS protocol version as libpq names it (`ssl_min_protocol_version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TlsVersion {
    Tls1_0,
    Tls1_1,
    Tls1_2,
    Tls1_3,
}

impl TlsVersion {
    const VALUES: &'static str = "TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3";

    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "TLSv1" => Self::Tls1_0,
            "TLSv1.1" => Self::Tls1_1,
            "TLSv1.2" => Self::Tls1_2,
            "TLSv1.3" => Self::Tls1_3,
            _ => return None,
        })
    }
}

/// The TLS options of one connection string, with libpq's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct TlsOptions {
    /// `sslmode`; libpq's default is `prefer`, or `verify-full` with `sslrootcert=system`.
    pub(super) mode: SslMode,
    /// `sslrootcert`.
    pub(super) root_cert: RootCert,
    /// `sslcert`; `None` means libpq's default `~/.postgresql/postgresql.crt` if it exists.
    pub(super) cert: Option<PathBuf>,
    /// `sslkey`; `None` means libpq's default `~/.postgresql/postgresql.key`.
    pub(super) key: Option<PathBuf>,
    /// `sslcertmode=disable` turns this off: never send a client certificate.
    pub(super) send_client_cert: bool,
    /// `sslsni`: send the host name in the handshake (default on).
    pub(super) sni: bool,
    /// `ssl_min_protocol_version` (libpq's default TLSv1.2).
    pub(super) min_version: TlsVersion,
    /// `ssl_max_protocol_version` (no bound by default).
    pub(super) max_version: Option<TlsVersion>,
}

/// A TLS option pgforce cannot honour, in terms the operator can act on. Every problem
/// involves an option tokio-postgres does not know (or an `sslmode` value it rejects).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum Problem {
    /// A value outside the option's set (the values of TLS options are never secret).
    #[error("invalid {key} value: \"{value}\" (expected {expected})")]
    InvalidValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A libpq option (or value) pgforce does not implement.
    #[error("connection option {option} is not supported by pgforce (see docs/postgres-tls.md)")]
    Unsupported { option: String },
    /// libpq refuses `sslrootcert=system` unless the host name is verified too.
    #[error(
        "weak sslmode \"{mode}\" may not be used with sslrootcert=system (use \"verify-full\")"
    )]
    WeakModeWithSystemRoots { mode: SslMode },
    /// The version bounds exclude both versions rustls speaks.
    #[error(
        "ssl_min_protocol_version and ssl_max_protocol_version leave no TLS version pgforce supports (TLSv1.2, TLSv1.3)"
    )]
    NoProtocolVersion,
}

/// A connection string split into what tokio-postgres parses and what pgforce handles.
#[derive(Debug)]
pub(super) struct ConnInfo {
    /// The connection string for tokio-postgres: without the TLS options, or unchanged
    /// when there is a [`Problem`].
    pub(super) driver: String,
    /// The TLS options, with libpq's defaults for those not given.
    pub(super) tls: TlsOptions,
    /// The first option pgforce cannot honour, if any.
    pub(super) problem: Option<Problem>,
}

impl ConnInfo {
    /// Splits a connection string in URL form (`postgres://…?sslmode=require`) or
    /// keyword/value form (`host=… sslmode=verify-full`).
    pub(super) fn parse(conninfo: &str) -> Self {
        let mut reader = OptionReader::default();
        let driver = match URL_PREFIXES.iter().any(|p| conninfo.starts_with(p)) {
            true => split_url(conninfo, &mut reader),
            false => split_keyword_value(conninfo, &mut reader),
        };
        let (tls, problem) = reader.finish();
        let driver = match problem {
            Some(_) => conninfo.to_owned(),
            None => driver,
        };
        Self {
            driver,
            tls,
            problem,
        }
    }
}

/// Collects TLS options, last occurrence wins (as libpq and tokio-postgres do).
#[derive(Default)]
struct OptionReader {
    mode: Option<SslMode>,
    root_cert: Option<RootCert>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    send_client_cert: Option<bool>,
    sni: Option<bool>,
    min_version: Option<TlsVersion>,
    max_version: Option<Option<TlsVersion>>,
    problem: Option<Problem>,
}

impl OptionReader {
    /// Looks at one decoded option; `true` when pgforce takes it out of the string.
    fn take(&mut self, key: &str, value: &str) -> bool {
        match self.read(key, value) {
            Ok(taken) => taken,
            Err(problem) => {
                self.problem.get_or_insert(problem);
                false
            }
        }
    }

    /// `Ok(true)`: handled; `Ok(false)`: not a TLS option of ours.
    fn read(&mut self, key: &str, value: &str) -> Result<bool, Problem> {
        match key {
            "sslmode" => {
                let mode = SslMode::parse(value).ok_or_else(|| Problem::InvalidValue {
                    key: "sslmode",
                    value: value.to_owned(),
                    expected: SslMode::VALUES,
                })?;
                self.mode = Some(mode);
            }
            // An empty file option means "not set", as in libpq.
            "sslrootcert" => {
                self.root_cert = match value {
                    "" => None,
                    "system" => Some(RootCert::System),
                    path => Some(RootCert::File(PathBuf::from(path))),
                };
            }
            "sslcert" => self.cert = Some(value).filter(|v| !v.is_empty()).map(PathBuf::from),
            "sslkey" => self.key = Some(value).filter(|v| !v.is_empty()).map(PathBuf::from),
            "sslcertmode" => {
                self.send_client_cert = Some(match value {
                    "allow" => true,
                    "disable" => false,
                    _ => return Err(unsupported(key, value)),
                });
            }
            "sslsni" => self.sni = Some(flag("sslsni", value)?),
            // Compression is unavailable in every current TLS library; libpq ignores it too.
            "sslcompression" => {
                flag("sslcompression", value)?;
            }
            // pgforce has no GSSAPI: "prefer" then means a plain or TLS session, as in a libpq
            // built without GSSAPI; "require" cannot be honoured.
            "gssencmode" => match value {
                "disable" | "prefer" => {}
                _ => return Err(unsupported(key, value)),
            },
            "ssl_min_protocol_version" => {
                self.min_version = Some(version("ssl_min_protocol_version", value)?);
            }
            "ssl_max_protocol_version" => {
                self.max_version = Some(match value {
                    "" => None,
                    _ => Some(version("ssl_max_protocol_version", value)?),
                });
            }
            "sslpassword" | "sslcrl" | "sslcrldir" | "sslkeylogfile" | "requiressl" => {
                return Err(Problem::Unsupported {
                    option: key.to_owned(),
                });
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn finish(self) -> (TlsOptions, Option<Problem>) {
        let root_cert = self.root_cert.unwrap_or(RootCert::Default);
        let default_mode = match root_cert {
            RootCert::System => SslMode::VerifyFull,
            _ => SslMode::Prefer,
        };
        let mode = self.mode.unwrap_or(default_mode);
        let min_version = self.min_version.unwrap_or(TlsVersion::Tls1_2);
        let max_version = self.max_version.flatten();
        let mut problem = self.problem;
        if root_cert == RootCert::System && mode != SslMode::VerifyFull {
            problem.get_or_insert(Problem::WeakModeWithSystemRoots { mode });
        }
        let top = max_version.unwrap_or(TlsVersion::Tls1_3);
        if top < TlsVersion::Tls1_2 || top < min_version {
            problem.get_or_insert(Problem::NoProtocolVersion);
        }
        let tls = TlsOptions {
            mode,
            root_cert,
            cert: self.cert,
            key: self.key,
            send_client_cert: self.send_client_cert.unwrap_or(true),
            sni: self.sni.unwrap_or(true),
            min_version,
            max_version,
        };
        (tls, problem)
    }
}

fn unsupported(key: &str, value: &str) -> Problem {
    Problem::Unsupported {
        option: format!("{key}={value}"),
    }
}

fn flag(key: &'static str, value: &str) -> Result<bool, Problem> {
    match value {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(Problem::InvalidValue {
            key,
            value: value.to_owned(),
            expected: "0 or 1",
        }),
    }
}

fn version(key: &'static str, value: &str) -> Result<TlsVersion, Problem> {
    TlsVersion::parse(value).ok_or_else(|| Problem::InvalidValue {
        key,
        value: value.to_owned(),
        expected: TlsVersion::VALUES,
    })
}

/// URL form. tokio-postgres finds the query after the credentials (up to the first `@`)
/// at the first `?`, splits it at `&` and each parameter at its first `=`, and
/// percent-decodes key and value. Parameters it would reject for their syntax are kept
/// as they are so that it reports them.
fn split_url(url: &str, reader: &mut OptionReader) -> String {
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    let Some(question) = url[after_credentials..].find('?') else {
        return url.to_owned();
    };
    let (base, query) = url.split_at(after_credentials + question);
    let query = &query[1..];
    let mut kept = Vec::new();
    for parameter in query.split('&') {
        let decoded = parameter.split_once('=').and_then(|(key, value)| {
            let key = percent_decode_str(key).decode_utf8().ok()?;
            let value = percent_decode_str(value).decode_utf8().ok()?;
            Some((key, value))
        });
        let taken = decoded.is_some_and(|(key, value)| reader.take(&key, &value));
        if !taken {
            kept.push(parameter);
        }
    }
    match kept.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", kept.join("&")),
    }
}

/// Keyword/value form, read with tokio-postgres's (libpq's) grammar: `key = value` pairs
/// separated by whitespace; a value is single-quoted or runs to the next whitespace, and
/// a backslash escapes the next character in both. Kept pairs are copied verbatim. On a
/// syntax error the string goes to tokio-postgres as it is, which reports the error.
fn split_keyword_value(conninfo: &str, reader: &mut OptionReader) -> String {
    let Some(pairs) = keyword_value_pairs(conninfo) else {
        return conninfo.to_owned();
    };
    let mut kept = Vec::new();
    for pair in pairs {
        if !reader.take(pair.key, &pair.value) {
            kept.push(&conninfo[pair.span.0..pair.span.1]);
        }
    }
    kept.join(" ")
}

/// One `key=value` pair: where it is in the string and its unescaped value.
struct Pair<'a> {
    key: &'a str,
    value: String,
    /// The whole pair.
    span: (usize, usize),
    /// Where its value starts (at the opening quote of a quoted one).
    value_start: usize,
}

/// The pairs of a keyword/value string, up to where reading stopped.
struct Scan<'a> {
    pairs: Vec<Pair<'a>>,
    stop: Stop,
}

/// Where and why reading a keyword/value string stopped.
enum Stop {
    /// At the end.
    End,
    /// At a pair without a keyword (a stray `=`): tokio-postgres ignores the rest.
    Ignored(usize),
    /// At a pair with a syntax error: tokio-postgres rejects the string.
    Broken(usize),
}

/// `None` on a syntax error.
fn keyword_value_pairs(s: &str) -> Option<Vec<Pair<'_>>> {
    let scan = scan_pairs(s);
    match scan.stop {
        Stop::End | Stop::Ignored(_) => Some(scan.pairs),
        Stop::Broken(_) => None,
    }
}

fn scan_pairs(s: &str) -> Scan<'_> {
    let mut pairs = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return Scan {
                pairs,
                stop: Stop::End,
            };
        };
        match read_pair(s, start, &mut chars) {
            Some(Some(pair)) => pairs.push(pair),
            Some(None) => {
                return Scan {
                    pairs,
                    stop: Stop::Ignored(start),
                };
            }
            None => {
                return Scan {
                    pairs,
                    stop: Stop::Broken(start),
                };
            }
        }
    }
}

/// Reads the pair starting at `start`: `None` on a syntax error, `Some(None)` when there
/// is no keyword (for example a stray `=`).
fn read_pair<'a>(
    s: &'a str,
    start: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Option<Option<Pair<'a>>> {
    let mut key_end = start;
    while let Some((i, c)) = chars.next_if(|&(_, c)| !c.is_whitespace() && c != '=') {
        key_end = i + c.len_utf8();
    }
    if key_end == start {
        return Some(None);
    }
    while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
    chars.next_if(|&(_, c)| c == '=')?;
    while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
    let value_start = chars.peek().map_or(s.len(), |&(i, _)| i);
    let mut value = String::new();
    let end;
    if chars.next_if(|&(_, c)| c == '\'').is_some() {
        loop {
            let (i, c) = chars.next()?;
            match c {
                '\'' => {
                    end = i + 1;
                    break;
                }
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                c => value.push(c),
            }
        }
    } else {
        let mut last = None;
        while let Some((i, c)) = chars.next_if(|&(_, c)| !c.is_whitespace()) {
            last = Some(i + c.len_utf8());
            match c {
                '\\' => {
                    if let Some((j, escaped)) = chars.next() {
                        last = Some(j + escaped.len_utf8());
                        value.push(escaped);
                    }
                }
                c => value.push(c),
            }
        }
        // An empty unquoted value is a syntax error for tokio-postgres.
        end = last.filter(|_| !value.is_empty())?;
    }
    Some(Some(Pair {
        key: &s[start..key_end],
        value,
        span: (start, end),
        value_start,
    }))
}

/// Connection options whose values are secrets.
const SECRET_OPTIONS: [&str; 2] = ["password", "sslpassword"];

/// What a secret is shown as.
const REDACTED: &str = "***";

fn is_secret(key: &str) -> bool {
    SECRET_OPTIONS.iter().any(|s| s.eq_ignore_ascii_case(key))
}

/// A connection string fit for messages and logs: every password replaced by `***`, in
/// the URL's credentials (`postgres://user:***@host/db`), in its parameters
/// (`?password=***`) and in keyword/value pairs (`password=***`, quoted or not).
///
/// Errs on the side of hiding: text pgforce cannot read as a connection string (a syntax
/// error, something tokio-postgres would ignore) is shown as `***` from where reading
/// stopped, and in URLs anything that looks like a password parameter is hidden wherever
/// it stands.
pub fn redact(conninfo: &str) -> String {
    match URL_PREFIXES.iter().find(|p| conninfo.starts_with(*p)) {
        Some(prefix) => redact_url(conninfo, prefix.len()),
        None => redact_keyword_value(conninfo),
    }
}

/// URL form. tokio-postgres takes the credentials up to the first `@`; should a raw `@`
/// be in the password, the rest of it would read as the host, so the credentials hidden
/// run to the last `@` before the host ends.
fn redact_url(url: &str, prefix_len: usize) -> String {
    let (prefix, rest) = url.split_at(prefix_len);
    let mut redacted = String::with_capacity(url.len());
    redacted.push_str(prefix);
    match rest.find('@') {
        Some(first) => {
            let host_end = rest[first + 1..]
                .find(['/', '?'])
                .map_or(rest.len(), |i| first + 1 + i);
            let at = rest[..host_end].rfind('@').unwrap_or(first);
            let (credentials, after) = rest.split_at(at);
            match credentials.split_once(':') {
                Some((user, _)) => {
                    redacted.push_str(user);
                    redacted.push(':');
                    redacted.push_str(REDACTED);
                }
                None => redacted.push_str(credentials),
            }
            redacted.push_str(after);
        }
        None => redacted.push_str(rest),
    }
    redact_url_parameters(&redacted)
}

/// Hides the value of every `password=` (or `sslpassword=`) that follows a `?` or `&`,
/// the key percent-decoded as tokio-postgres decodes it; the value runs to the next `&`.
fn redact_url_parameters(url: &str) -> String {
    let mut redacted = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(separator) = rest.find(['?', '&']) {
        let (before, parameter) = rest.split_at(separator + 1);
        redacted.push_str(before);
        rest = parameter;
        let Some(equals) = parameter.find('=') else {
            continue;
        };
        let key = &parameter[..equals];
        if key.contains(['?', '&']) {
            continue;
        }
        let decoded = percent_decode_str(key).decode_utf8_lossy();
        if !is_secret(&decoded) {
            continue;
        }
        let value_end = parameter[equals + 1..]
            .find('&')
            .map_or(parameter.len(), |i| equals + 1 + i);
        redacted.push_str(&parameter[..=equals]);
        redacted.push_str(REDACTED);
        rest = &parameter[value_end..];
    }
    redacted.push_str(rest);
    redacted
}

/// Keyword/value form: each secret pair's value becomes `***` (quotes included), the rest
/// is copied as it is, up to where the string stops making sense.
fn redact_keyword_value(conninfo: &str) -> String {
    let scan = scan_pairs(conninfo);
    let mut redacted = String::with_capacity(conninfo.len());
    let mut copied = 0;
    for pair in scan.pairs.iter().filter(|p| is_secret(p.key)) {
        redacted.push_str(&conninfo[copied..pair.value_start]);
        redacted.push_str(REDACTED);
        copied = pair.span.1;
    }
    let readable_end = match scan.stop {
        Stop::End => conninfo.len(),
        Stop::Ignored(at) | Stop::Broken(at) => at,
    };
    redacted.push_str(&conninfo[copied..readable_end]);
    if readable_end < conninfo.len() {
        redacted.push_str(REDACTED);
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(conninfo: &str) -> ConnInfo {
        ConnInfo::parse(conninfo)
    }

    #[test]
    fn url_query_loses_tls_options_and_keeps_the_rest() {
        let info = parse(
            "postgres://u:p%40ss@db.example.com:6543/app?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(
            info.driver,
            "postgres://u:p%40ss@db.example.com:6543/app?application_name=x"
        );
        assert_eq!(info.tls.mode, SslMode::VerifyFull);
        assert_eq!(info.tls.root_cert, RootCert::File("/etc/ca.pem".into()));
        assert_eq!(info.problem, None);
    }

    #[test]
    fn url_without_remaining_parameters_drops_the_question_mark() {
        let info = parse("postgresql://db/app?sslmode=require");
        assert_eq!(info.driver, "postgresql://db/app");
        assert_eq!(info.tls.mode, SslMode::Require);
    }

    #[test]
    fn url_query_starts_after_the_credentials() {
        // A raw `?` in the password is part of the credentials, as tokio-postgres reads it.
        let info = parse("postgres://u:a?b@db/app?sslmode=disable");
        assert_eq!(info.driver, "postgres://u:a?b@db/app");
        assert_eq!(info.tls.mode, SslMode::Disable);
    }

    #[test]
    fn keyword_value_form_keeps_other_pairs_verbatim() {
        let info = parse(
            "host=db port = 5432 password='it\\'s x' sslmode=verify-ca sslcert=/c.pem  sslkey='/k y.pem' dbname=app",
        );
        assert_eq!(info.tls.mode, SslMode::VerifyCa);
        assert_eq!(info.tls.cert, Some("/c.pem".into()));
        assert_eq!(info.tls.key, Some("/k y.pem".into()));
        assert_eq!(info.problem, None);
        assert_eq!(
            info.driver,
            "host=db port = 5432 password='it\\'s x' dbname=app"
        );
        let config: tokio_postgres::Config = info.driver.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"it's x"[..]));
    }

    #[test]
    fn keyword_value_form_unescapes_values() {
        let info = parse(r"host=db sslrootcert=/a\ b/c.pem");
        assert_eq!(info.tls.root_cert, RootCert::File("/a b/c.pem".into()));
        assert_eq!(info.driver, "host=db");
    }

    #[test]
    fn keyword_value_syntax_errors_go_to_tokio_postgres_unchanged() {
        for broken in ["host=db sslmode='require", "host=db sslmode", "host= "] {
            let info = parse(broken);
            assert_eq!(info.driver, broken);
            assert!(
                info.driver.parse::<tokio_postgres::Config>().is_err(),
                "tokio-postgres rejects {broken:?} too"
            );
        }
    }

    #[test]
    fn split_strings_parse_in_tokio_postgres() {
        for conninfo in [
            "postgres://u:pw@localhost:5433/db?sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=5",
            "host=localhost port=5433 user=u sslmode=verify-ca sslrootcert='/ca.pem' dbname=db",
            "postgres://localhost/db?sslmode=allow",
        ] {
            let info = parse(conninfo);
            let config: tokio_postgres::Config = info.driver.parse().unwrap();
            assert_eq!(config.get_dbname(), Some("db"));
        }
    }

    #[test]
    fn the_driver_reads_the_same_settings_with_tls_options_taken_out() {
        for (with_tls, without) in [
            (
                "host=a\\ b port=1 sslmode=require user = 'x \\' y' options='-c a=b'",
                "host=a\\ b port=1 user = 'x \\' y' options='-c a=b'",
            ),
            (
                "  sslrootcert = '/r.pem'\tdbname=d\napplication_name=é ",
                "dbname=d application_name=é",
            ),
            (
                "postgres://u:p%3Fw@[::1]:5,h2/db%20x?sslmode=verify-full&options=-c%20a%3Db&sslkey=k",
                "postgres://u:p%3Fw@[::1]:5,h2/db%20x?options=-c%20a%3Db",
            ),
            (
                "postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql&sslcert=c",
                "postgresql:///db?host=%2Fvar%2Frun%2Fpostgresql",
            ),
        ] {
            let info = parse(with_tls);
            assert_eq!(info.problem, None, "{with_tls}");
            let split: tokio_postgres::Config = info.driver.parse().unwrap();
            let expected: tokio_postgres::Config = without.parse().unwrap();
            assert!(split == expected, "{with_tls:?} became {:?}", info.driver);
        }
    }

    #[test]
    fn defaults_are_libpqs() {
        let info = parse("host=db");
        assert_eq!(
            info.tls,
            TlsOptions {
                mode: SslMode::Prefer,
                root_cert: RootCert::Default,
                cert: None,
                key: None,
                send_client_cert: true,
                sni: true,
                min_version: TlsVersion::Tls1_2,
                max_version: None,
            }
        );
    }

    #[test]
    fn last_occurrence_wins() {
        let info = parse("postgres://db/x?sslmode=disable&sslmode=require");
        assert_eq!(info.tls.mode, SslMode::Require);
    }

    #[test]
    fn unknown_sslmode_is_named_and_the_driver_rejects_the_string() {
        let info = parse("postgres://u:secret@db/x?sslmode=verify-fool");
        let problem = info.problem.unwrap();
        assert_eq!(
            problem.to_string(),
            "invalid sslmode value: \"verify-fool\" (expected disable, allow, prefer, require, verify-ca or verify-full)"
        );
        assert!(info.driver.parse::<tokio_postgres::Config>().is_err());
    }

    #[test]
    fn every_problem_leaves_a_string_the_driver_rejects() {
        for conninfo in [
            "host=db sslmode=verify-fool",
            "host=db sslcrl=/crl.pem",
            "host=db sslcrldir=/crls",
            "host=db sslpassword=x",
            "host=db sslkeylogfile=/keys",
            "host=db requiressl=1",
            "host=db gssencmode=require",
            "host=db sslcertmode=require",
            "host=db sslsni=2",
            "host=db sslcompression=yes",
            "host=db ssl_min_protocol_version=SSLv3",
            "host=db ssl_max_protocol_version=TLSv1.1",
            "postgres://db/x?sslrootcert=system&sslmode=require",
        ] {
            let info = parse(conninfo);
            assert!(info.problem.is_some(), "{conninfo}");
            assert!(
                info.driver.parse::<tokio_postgres::Config>().is_err(),
                "tokio-postgres rejects {conninfo:?}"
            );
        }
    }

    #[test]
    fn unsupported_options_are_named() {
        for conninfo in [
            "host=db sslcrl=/crl.pem",
            "host=db sslpassword=x",
            "host=db gssencmode=require",
            "host=db sslcertmode=require",
        ] {
            let info = parse(conninfo);
            let message = info.problem.unwrap().to_string();
            assert!(message.contains("is not supported by pgforce"), "{message}");
        }
    }

    #[test]
    fn harmless_libpq_options_are_accepted() {
        let info =
            parse("host=db gssencmode=disable sslcompression=0 sslsni=0 sslcertmode=disable");
        assert_eq!(info.problem, None);
        assert_eq!(info.driver, "host=db");
        assert!(!info.tls.sni);
        assert!(!info.tls.send_client_cert);
    }

    #[test]
    fn system_roots_default_to_verify_full_and_refuse_weaker_modes() {
        let info = parse("host=db sslrootcert=system");
        assert_eq!(info.tls.mode, SslMode::VerifyFull);
        assert_eq!(info.problem, None);
        let info = parse("host=db sslrootcert=system sslmode=require");
        assert_eq!(
            info.problem,
            Some(Problem::WeakModeWithSystemRoots {
                mode: SslMode::Require
            })
        );
    }

    #[test]
    fn protocol_version_bounds_are_read_and_checked() {
        let info = parse("host=db ssl_min_protocol_version=TLSv1.3");
        assert_eq!(info.tls.min_version, TlsVersion::Tls1_3);
        assert_eq!(info.problem, None);
        let info = parse("host=db ssl_max_protocol_version=TLSv1.1");
        assert_eq!(info.problem, Some(Problem::NoProtocolVersion));
        let info = parse("host=db ssl_min_protocol_version=SSLv3");
        assert!(matches!(info.problem, Some(Problem::InvalidValue { .. })));
    }

    #[test]
    fn problems_never_quote_the_password() {
        let info = parse("host=db password=hunter2 sslmode=bogus");
        assert!(!info.problem.unwrap().to_string().contains("hunter2"));
    }

    #[test]
    fn url_passwords_are_redacted_in_the_credentials() {
        for (url, redacted) in [
            (
                "postgres://app:s3cret@db:5432/app",
                "postgres://app:***@db:5432/app",
            ),
            (
                "postgresql://app:p%40ss%3Aw@db/app?sslmode=require",
                "postgresql://app:***@db/app?sslmode=require",
            ),
            // A raw `@` or `:` in the password: all of it is hidden, not only up to the first.
            ("postgres://app:p@ss:w@db/app", "postgres://app:***@db/app"),
            (
                "postgres://app:pw@db/app?application_name=a@b",
                "postgres://app:***@db/app?application_name=a@b",
            ),
            ("postgres://app:@db/app", "postgres://app:***@db/app"),
        ] {
            assert_eq!(redact(url), redacted, "{url}");
        }
    }

    #[test]
    fn url_password_parameters_are_redacted() {
        for (url, redacted) in [
            (
                "postgres://db/app?sslmode=require&password=s3cret&application_name=x",
                "postgres://db/app?sslmode=require&password=***&application_name=x",
            ),
            (
                "postgres://app@db/app?password=s3cret",
                "postgres://app@db/app?password=***",
            ),
            (
                "postgres://db/app?pass%77ord=s3cret",
                "postgres://db/app?pass%77ord=***",
            ),
            (
                "postgres://db/app?sslpassword=s3cret&PASSWORD=s3cret",
                "postgres://db/app?sslpassword=***&PASSWORD=***",
            ),
            // tokio-postgres would read this `@` as the end of the credentials; the
            // password parameter is hidden all the same.
            (
                "postgres://db/app?password=s3c@ret",
                "postgres://db/app?password=***",
            ),
            (
                "postgres://u:x@db/app?password=a?b&c=d",
                "postgres://u:***@db/app?password=***&c=d",
            ),
        ] {
            assert_eq!(redact(url), redacted, "{url}");
        }
    }

    #[test]
    fn strings_without_passwords_are_unchanged() {
        for conninfo in [
            "postgres://app@db:5432/app?sslmode=verify-full&sslrootcert=/ca.pem",
            "postgresql:///app?host=%2Fvar%2Frun%2Fpostgresql",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "host=db port=5432 user=app dbname='my app' sslmode=require",
            "",
        ] {
            assert_eq!(redact(conninfo), conninfo);
        }
    }

    #[test]
    fn keyword_value_passwords_are_redacted() {
        for (conninfo, redacted) in [
            (
                "host=db user=app password=s3cret sslmode=require",
                "host=db user=app password=*** sslmode=require",
            ),
            (
                "host=db password='s3 cr\\'et' dbname=app",
                "host=db password=*** dbname=app",
            ),
            (
                "password = 's3 cret'\tdbname=app",
                "password = ***\tdbname=app",
            ),
            ("host=db password=s3\\ cret", "host=db password=***"),
            ("host=db PASSWORD=s3cret", "host=db PASSWORD=***"),
            ("sslpassword=s3cret host=db", "sslpassword=*** host=db"),
        ] {
            assert_eq!(redact(conninfo), redacted, "{conninfo}");
        }
    }

    #[test]
    fn unreadable_rests_are_hidden_whole() {
        for (conninfo, redacted) in [
            ("host=db password='s3 cret", "host=db ***"),
            ("host=db password s3cret", "host=db ***"),
            ("host=db =x password=s3cret", "host=db ***"),
            ("POSTGRES://app:s3cret@db/app", "***"),
        ] {
            assert_eq!(redact(conninfo), redacted, "{conninfo}");
        }
    }

    #[test]
    fn redacted_strings_keep_every_other_setting() {
        for conninfo in [
            "postgres://app:s3cret@db:6543/app?sslmode=disable&application_name=x",
            "postgres://app@db/app?password=s3cret&connect_timeout=5",
            "host=db port=6543 user=app password='s3 cret' dbname=app application_name=x",
        ] {
            let original: tokio_postgres::Config = conninfo.parse().unwrap();
            let redacted = redact(conninfo);
            assert!(!redacted.contains("s3"), "{redacted}");
            let mut shown: tokio_postgres::Config = redacted.parse().unwrap();
            assert_eq!(shown.get_password(), Some(&b"***"[..]), "{redacted}");
            shown.password(original.get_password().unwrap());
            assert!(shown == original, "{conninfo:?} became {redacted:?}");
        }
    }
}
