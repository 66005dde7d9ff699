//! A private PostgreSQL that speaks only TLS, started by one test and gone after it.
//!
//! The local server's certificate and `pg_hba.conf` are whatever the machine has; the
//! verification modes need a server whose certificate the test issued itself and which
//! refuses plain sessions. [`TlsServer::start`] makes a CA and certificates with rcgen,
//! runs `initdb` into a fresh directory under the temp dir, and starts `postgres` on a free
//! port with `ssl = on` and only `hostssl` lines for TCP. Dropping it stops the server and
//! removes the directory, also when the test fails.
//!
//! initdb and postgres refuse to run as root: as root they run as the `postgres` OS user
//! (`runuser`), which owns the directory. The binaries are found under
//! `/usr/lib/postgresql/<version>/bin` (highest version), or in `PGFORCE_PG_BIN`.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::sync::atomic::{AtomicU32, Ordering};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::process::Command;

/// The roles the server knows besides `postgres`.
pub const CERT_USER: &str = "certuser";
pub const SCRAM_USER: &str = "scramuser";
pub const SCRAM_PASSWORD: &str = "pgforce-scram-secret";

/// The name in the server certificate.
pub const SERVER_NAME: &str = "localhost";

/// Where server binaries may be, when `PGFORCE_PG_BIN` is not set.
const PG_LIB_DIR: &str = "/usr/lib/postgresql";

/// Makes directory names unique within this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running TLS-only server and the files a client needs to talk to it.
pub struct TlsServer {
    /// Everything lives here: data directory, socket, certificates, log.
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The CA that issued the server and client certificates.
    pub ca: PathBuf,
    /// A CA that issued nothing this server uses.
    pub other_ca: PathBuf,
    /// A client certificate for [`CERT_USER`] and its key (PKCS#8, mode 0600).
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsServer {
    /// Starts a server; panics with what to install or fix when it cannot.
    pub async fn start() -> Self {
        let bin = server_binaries();
        let as_postgres = is_root().await;
        let dir = std::env::temp_dir().join(format!(
            "pgforce-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        // From here on, dropping `server` cleans up whatever happens next.
        let mut server = Self {
            ca: dir.join("ca.crt"),
            other_ca: dir.join("other-ca.crt"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            dir,
            bin,
            as_postgres,
            port: 0,
        };
        server.write_certificates();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&server.dir)
                .status()
                .await
                .unwrap();
            assert!(status.success(), "chown to the postgres OS user failed");
        }
        server.initdb().await;
        server.configure();
        server.start_postgres().await;
        server.create_roles().await;
        server
    }

    /// A keyword/value connection string to this server: TCP to 127.0.0.1 with `host`
    /// as the name TLS sees, then `extra`.
    pub fn conninfo(&self, host: &str, extra: &str) -> String {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=10 {extra}",
            self.port
        )
    }

    /// A URL to this server by its certificate's name, then `query`.
    pub fn url(&self, query: &str) -> String {
        format!(
            "postgres://postgres@{SERVER_NAME}:{}/postgres?connect_timeout=10&{query}",
            self.port
        )
    }

    /// A keyword/value connection string through the Unix socket, then `extra`.
    pub fn socket_conninfo(&self, extra: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres {extra}",
            self.dir.display(),
            self.port
        )
    }

    fn write_certificates(&self) {
        let (ca, ca_key) = authority("pgforce test CA");
        let (other_ca, _) = authority("pgforce unrelated CA");
        let (server, server_key) = leaf(
            SERVER_NAME,
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
            &ca_key,
        );
        let (client, client_key) =
            leaf(CERT_USER, ExtendedKeyUsagePurpose::ClientAuth, &ca, &ca_key);
        write(&self.ca, &ca.pem(), 0o644);
        write(&self.other_ca, &other_ca.pem(), 0o644);
        write(&self.dir.join("server.crt"), &server.pem(), 0o644);
        write(
            &self.dir.join("server.key"),
            &server_key.serialize_pem(),
            0o600,
        );
        write(&self.client_cert, &client.pem(), 0o644);
        write(&self.client_key, &client_key.serialize_pem(), 0o600);
    }

    async fn initdb(&self) {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// TLS with the test's certificates; TCP only as `hostssl`, so plain sessions are refused.
    fn configure(&self) {
        let dir = self.dir.display();
        let settings = format!(
            "listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{dir}'\n\
             ssl = on\n\
             ssl_cert_file = '{dir}/server.crt'\n\
             ssl_key_file = '{dir}/server.key'\n\
             ssl_ca_file = '{dir}/ca.crt'\n\
             fsync = off\n\
             max_connections = 20\n\
             shared_buffers = 16MB\n"
        );
        let conf = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&settings);
        std::fs::write(&conf, text).unwrap();
        let hba = format!(
            "local all postgres trust\n\
             hostssl all {CERT_USER} 127.0.0.1/32 cert\n\
             hostssl all {SCRAM_USER} 127.0.0.1/32 scram-sha-256\n\
             hostssl all all 127.0.0.1/32 trust\n"
        );
        std::fs::write(self.data().join("pg_hba.conf"), hba).unwrap();
    }

    /// Starts on a free port; another process may take the port between our probe and
    /// the server's bind, so a failed start is retried on a new port.
    async fn start_postgres(&mut self) {
        let mut last_log = String::new();
        for _ in 0..3 {
            self.port = free_port();
            let output = self
                .command("pg_ctl")
                .arg("start")
                .arg("-w")
                .args(["-t", "30"])
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .arg("-o")
                .arg(format!("-p {}", self.port))
                .output()
                .await
                .unwrap();
            if output.status.success() {
                return;
            }
            last_log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        }
        panic!("the private PostgreSQL did not start; its log:\n{last_log}");
    }

    async fn create_roles(&self) {
        let client = pgforce_store::connect(&self.socket_conninfo(""))
            .await
            .expect("the private server answers on its Unix socket");
        client
            .batch_execute(&format!(
                "create role {CERT_USER} login; \
                 create role {SCRAM_USER} login password '{SCRAM_PASSWORD}';"
            ))
            .await
            .unwrap();
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A server binary, run as the `postgres` OS user when we are root.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        match self.as_postgres {
            true => {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            }
            false => Command::new(program),
        }
    }

    fn std_command(&self, name: &str) -> StdCommand {
        let program = self.bin.join(name);
        match self.as_postgres {
            true => {
                let mut command = StdCommand::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            }
            false => StdCommand::new(program),
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        // Drop cannot await; stopping takes a moment and the test is over anyway.
        if self.data().join("postmaster.pid").exists() {
            let _ = self
                .std_command("pg_ctl")
                .args(["stop", "-w", "-m", "immediate", "-D"])
                .arg(self.data())
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn authority(name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.self_signed(&key).unwrap(), key)
}

fn leaf(
    name: &str,
    usage: ExtendedKeyUsagePurpose,
    ca: &Certificate,
    ca_key: &KeyPair,
) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let alt_names = match usage {
        ExtendedKeyUsagePurpose::ServerAuth => vec![name.to_owned()],
        _ => Vec::new(),
    };
    let mut params = CertificateParams::new(alt_names).unwrap();
    // The server maps a client certificate to a role by its common name.
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    (params.signed_by(&key, ca, ca_key).unwrap(), key)
}

fn write(path: &Path, contents: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;

    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().await.unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// `PGFORCE_PG_BIN`, or the highest version under `/usr/lib/postgresql` with `initdb`.
fn server_binaries() -> PathBuf {
    if let Some(bin) = std::env::var_os("PGFORCE_PG_BIN") {
        return PathBuf::from(bin);
    }
    let versions = std::fs::read_dir(PG_LIB_DIR)
        .into_iter()
        .flatten()
        .flatten();
    versions
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries (initdb, pg_ctl) under {PG_LIB_DIR}/<version>/bin: \
                 install the postgresql package or set PGFORCE_PG_BIN to their directory"
            )
        })
}
