//! Where a client may send credentials and tokens: Salesforce's own login and instance
//! host families over HTTPS, and the hosts an operator names (an emulator, a proxy).
//!
//! A login URL, the token endpoint's `instance_url` and the Pub/Sub endpoint decide where
//! passwords, client secrets, refresh tokens, signed JWT assertions and access tokens go.
//! Whoever can change one of them (a management API caller, a token endpoint that is not
//! Salesforce's) could otherwise have them sent to any host, an internal service
//! included. So every place that sends one checks the host here first, and redirects are
//! followed only to hosts that pass the same check.
//!
//! Salesforce documents its login hosts as `login.salesforce.com`, `test.salesforce.com`
//! and My Domains (`<name>.my.salesforce.com`, `<name>--<sandbox>.sandbox.my.salesforce.com`,
//! partitioned ones such as `<name>.develop.my.salesforce.com`); instances and older
//! domains live under `salesforce.com`, `force.com`, `cloudforce.com` and
//! `salesforce-setup.com`. Anything else (Salesforce on Alibaba Cloud, a Government Cloud
//! domain, a proxy, the emulator) is allowed only when the operator lists it.

use reqwest::Url;

use crate::error::Error;

/// Salesforce's login and instance host families, as people read them in errors and docs.
pub const SALESFORCE_HOST_FAMILIES: &str = "https://login.salesforce.com, https://test.salesforce.com, https://*.my.salesforce.com, https://*.salesforce.com, https://*.force.com, https://*.cloudforce.com, https://*.salesforce-setup.com";

/// Domains every subdomain of which is Salesforce's (reached over HTTPS only).
const SALESFORCE_DOMAINS: [&str; 4] = [
    "salesforce.com",
    "force.com",
    "cloudforce.com",
    "salesforce-setup.com",
];

/// How many redirects a call follows at most (each to an allowed host).
const MAX_REDIRECTS: usize = 5;

/// One host an operator allows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// This host (lowercase; IPv6 in brackets), on `port` or on any port.
    Host { host: String, port: Option<u16> },
    /// Every subdomain of `domain` (not the domain itself), on `port` or on any port.
    Subdomains { domain: String, port: Option<u16> },
}

impl Pattern {
    fn matches(&self, host: &str, port: u16) -> bool {
        let (fits, wanted) = match self {
            Self::Host {
                host: allowed,
                port,
            } => (host == allowed, port),
            Self::Subdomains { domain, port } => (is_subdomain(host, domain), port),
        };
        fits && wanted.is_none_or(|wanted| wanted == port)
    }
}

/// Whether `host` is a subdomain of `domain` (at least one label more).
fn is_subdomain(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty())
}

/// The hosts a client may send credentials and tokens to: Salesforce's families over
/// HTTPS, plus the hosts an operator lists (over HTTP or HTTPS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    extra: Vec<Pattern>,
}

impl AllowedHosts {
    /// Salesforce's own hosts only.
    pub fn salesforce() -> Self {
        Self::default()
    }

    /// Salesforce's hosts and the ones `entries` name: `host`, `host:port`, `[v6]:port`,
    /// or `*.domain` (its subdomains), each with or without a port (none means any).
    /// The error names the entry that is not one of these.
    pub fn with_extra<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let extra = entries
            .iter()
            .map(|entry| parse_entry(entry.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { extra })
    }

    /// Whether a client may talk to `host` on `port` with `scheme`.
    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let salesforce = scheme == "https"
            && SALESFORCE_DOMAINS
                .iter()
                .any(|domain| is_subdomain(host, domain));
        let listed =
            matches!(scheme, "http" | "https") && self.extra.iter().any(|p| p.matches(host, port));
        salesforce || listed
    }

    /// Whether a client may follow a redirect to `url`.
    fn allows_url(&self, url: &Url) -> bool {
        match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => self.allows(url.scheme(), host, port),
            _ => false,
        }
    }

    /// Checks `url`, named `what` in the error (`login_url`, `instance_url`): it must be
    /// an origin (`https://host[:port]`, a trailing `/` allowed, nothing else) on an
    /// allowed host.
    pub fn check_url(&self, what: &str, url: &str) -> Result<(), Error> {
        let refuse = |problem: String| Error::HostNotAllowed {
            what: what.to_owned(),
            problem,
        };
        let parsed = Url::parse(url).map_err(|e| refuse(format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(refuse(format!(
                "must be an https:// URL, not {}:",
                parsed.scheme()
            )));
        }
        if !parsed.username().is_empty()
            || parsed.password().is_some()
            || !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(refuse(
                "must be a bare https://host[:port], without credentials, path, query or fragment"
                    .to_owned(),
            ));
        }
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
            return Err(refuse("names no host".to_owned()));
        };
        if self.allows(parsed.scheme(), host, port) {
            Ok(())
        } else {
            Err(refuse(not_allowed(parsed.scheme(), host, port)))
        }
    }

    /// Checks a gRPC `endpoint` (`host:port`, reached over TLS), named `what` in the
    /// error (`pubsub_endpoint`).
    pub fn check_endpoint(&self, what: &str, endpoint: &str) -> Result<(), Error> {
        let refuse = |problem: String| Error::HostNotAllowed {
            what: what.to_owned(),
            problem,
        };
        let (host, port) = split_host_port(endpoint)
            .ok()
            .and_then(|(host, port)| Some((normal_host(host).ok()?, port?)))
            .ok_or_else(|| refuse("must be host:port".to_owned()))?;
        if self.allows("https", &host, port) {
            Ok(())
        } else {
            Err(refuse(not_allowed("https", &host, port)))
        }
    }

    /// The redirect policy of a client: at most a few hops, each to an allowed host.
    pub(crate) fn redirect_policy(&self) -> reqwest::redirect::Policy {
        let allowed = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS || !allowed.allows_url(attempt.url()) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        })
    }
}

/// What a refusal says: the host, and what is allowed instead (never the operator's own
/// list, which a caller has no business reading).
fn not_allowed(scheme: &str, host: &str, port: u16) -> String {
    format!(
        "{scheme}://{host}:{port} is not a Salesforce login or instance host ({SALESFORCE_HOST_FAMILIES}) nor one the operator allows (allowed_login_hosts)"
    )
}

/// An operator's entry as a pattern, or what is wrong with it.
fn parse_entry(entry: &str) -> Result<Pattern, String> {
    let wrong = |why: &str| {
        format!(
            "{entry:?} {why}: write host, host:port or *.domain (no scheme, path or credentials)"
        )
    };
    if entry.contains(['/', '@', '?', '#']) || entry.trim() != entry || entry.is_empty() {
        return Err(wrong("is not a host"));
    }
    let (host, port) = split_host_port(entry).map_err(|why| wrong(&why))?;
    match host.strip_prefix("*.") {
        Some(domain) => Ok(Pattern::Subdomains {
            domain: normal_host(domain).map_err(|why| wrong(&why))?,
            port,
        }),
        None => Ok(Pattern::Host {
            host: normal_host(host).map_err(|why| wrong(&why))?,
            port,
        }),
    }
}

/// `host[:port]` split, with IPv6 hosts in brackets.
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let (host, rest) = match text.strip_prefix('[') {
        Some(inner) => {
            let end = inner.find(']').ok_or("has an unclosed [")?;
            (&text[..end + 2], &inner[end + 1..])
        }
        None => match text.rsplit_once(':') {
            Some((host, _)) => (host, &text[host.len()..]),
            None => (text, ""),
        },
    };
    let port = match rest {
        "" => None,
        rest => {
            let digits = rest.strip_prefix(':').ok_or("has text after the host")?;
            Some(digits.parse::<u16>().map_err(|_| "has no valid port")?)
        }
    };
    Ok((host, port))
}

/// A host as URLs spell it (lowercase, IDNA, IPv6 in brackets), or why it is none.
fn normal_host(host: &str) -> Result<String, String> {
    if host.is_empty() || host.contains(':') && !host.starts_with('[') {
        return Err("is not a host".to_owned());
    }
    let url = Url::parse(&format!("https://{host}/")).map_err(|e| e.to_string())?;
    url.host_str()
        .map(str::to_owned)
        .ok_or_else(|| "is not a host".to_owned())
}

/// The host (and port, when given) of `url`, for errors that must not say more.
pub(crate) fn host_of(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_else(|| "(no host)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(hosts: &AllowedHosts, url: &str) -> bool {
        hosts.check_url("login_url", url).is_err()
    }

    #[test]
    fn salesforce_hosts_pass_over_https_only() {
        let hosts = AllowedHosts::salesforce();
        for url in [
            "https://login.salesforce.com",
            "https://test.salesforce.com/",
            "https://acme.my.salesforce.com",
            "https://acme--uat.sandbox.my.salesforce.com",
            "https://acme.develop.my.salesforce.com",
            "https://na1.salesforce.com",
            "https://acme.lightning.force.com",
            "https://acme.my.salesforce-setup.com",
            "https://x.cloudforce.com",
            "https://LOGIN.Salesforce.com",
        ] {
            assert!(hosts.check_url("login_url", url).is_ok(), "{url}");
        }
        for url in [
            "http://login.salesforce.com",
            "https://salesforce.com",
            "https://login.salesforce.com.evil.example",
            "https://evilsalesforce.com",
            "https://login.salesforce.com@evil.example",
            "https://evil.example#.salesforce.com",
            "https://evil.example/.salesforce.com",
            "https://login.salesforce.com/services/oauth2",
            "https://login.salesforce.com?x=1",
            "https://127.0.0.1",
            "ftp://login.salesforce.com",
            "login.salesforce.com",
        ] {
            assert!(refused(&hosts, url), "{url}");
        }
    }

    #[test]
    fn listed_hosts_pass_on_their_port_over_http_or_https() {
        let hosts = AllowedHosts::with_extra(&["127.0.0.1:8080", "localhost", "*.corp.example"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!refused(&hosts, "http://127.0.0.1:8080"));
        assert!(!refused(&hosts, "https://127.0.0.1:8080/"));
        assert!(refused(&hosts, "http://127.0.0.1:8081"));
        assert!(refused(&hosts, "http://127.0.0.1"));
        assert!(!refused(&hosts, "http://localhost:9"));
        assert!(!refused(&hosts, "https://sf.corp.example"));
        assert!(refused(&hosts, "https://corp.example"));
        assert!(
            hosts
                .check_endpoint("pubsub_endpoint", "localhost:7443")
                .is_ok()
        );
        assert!(
            hosts
                .check_endpoint("pubsub_endpoint", "api.pubsub.salesforce.com:7443")
                .is_ok()
        );
        assert!(
            hosts
                .check_endpoint("pubsub_endpoint", "10.0.0.1:7443")
                .is_err()
        );
        assert!(
            hosts
                .check_endpoint("pubsub_endpoint", "localhost")
                .is_err()
        );
    }

    #[test]
    fn refusals_name_the_field_and_the_families_not_the_operators_list() {
        let hosts = AllowedHosts::with_extra(&["internal.example:1"]).unwrap_or_default();
        let error = hosts
            .check_url("login_url", "http://10.1.2.3:8080")
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            error.starts_with("login_url: http://10.1.2.3:8080 "),
            "{error}"
        );
        assert!(error.contains("*.my.salesforce.com"), "{error}");
        assert!(!error.contains("internal.example"), "{error}");
    }

    #[test]
    fn bad_entries_are_named() {
        for entry in ["http://x", "x/y", "", "a:b:c", "x:port", "[::1", "u@x"] {
            let error = AllowedHosts::with_extra(&[entry]).map(|_| ()).unwrap_err();
            assert!(error.contains(&format!("{entry:?}")), "{error}");
        }
        let ipv6 = AllowedHosts::with_extra(&["[::1]:80"]).unwrap_or_default();
        assert!(!refused(&ipv6, "http://[::1]"));
    }
}
