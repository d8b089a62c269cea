//! The DynamoDB/SQS/SNS stand-in behind HTTPS, so that a function's first calls make real
//! TLS handshakes as they do against AWS: a TLS front on 127.0.0.1 (rustls with aws-lc,
//! TLS 1.3, ALPN `http/1.1`) that hands each connection's bytes to the plain stand-in.
//!
//! Its certificates are made when the bench starts, with the `openssl` command: a root
//! CA, an intermediate and a leaf for `IP:127.0.0.1`, all RSA 2048 like AWS's endpoints'
//! chains, the front sending the leaf and the intermediate. The function under test trusts
//! the root through `SSL_CERT_FILE` (read by `rustls-native-certs`, which the SDK's HTTPS
//! client loads its roots with), set to a copy of the system's CA bundle with the root
//! appended, so that it loads as many roots as it would otherwise.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The system CA bundles `openssl-probe` (and so `rustls-native-certs`) looks for, in its
/// order.
const SYSTEM_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
];

pub struct TlsFront {
    /// `https://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    /// The system's CA bundle with the bench's root appended, for `SSL_CERT_FILE`.
    pub trust_file: PathBuf,
    /// How many certificates `trust_file` holds.
    pub roots: usize,
    /// The bench's root alone (PEM).
    pub root_file: PathBuf,
    dir: PathBuf,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `openssl` with `args` (split on spaces) in `dir`.
fn openssl(dir: &Path, args: &str) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
}

/// A root CA, an intermediate it signs and a leaf for 127.0.0.1 the intermediate signs.
fn make_chain(dir: &Path) -> Result<(), String> {
    let req = |cn: &str| {
        format!(
            "[req]\nprompt = no\ndistinguished_name = dn\nx509_extensions = v3\n\
             [dn]\nCN = {cn}\n\
             [v3]\nbasicConstraints = critical,CA:TRUE\n\
             keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
        )
    };
    write(dir, "root.cnf", &req("smsreg bench root CA"))?;
    write(dir, "int.cnf", &req("smsreg bench intermediate CA"))?;
    write(dir, "leaf.cnf", &req("127.0.0.1"))?;
    write(
        dir,
        "int.ext",
        "basicConstraints = critical,CA:TRUE,pathlen:0\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
    )?;
    write(
        dir,
        "leaf.ext",
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
    )?;
    let key = "-newkey rsa:2048 -nodes";
    openssl(
        dir,
        &format!("req -x509 -config root.cnf -days 7 {key} -keyout root.key -out root.pem"),
    )?;
    for (name, issuer, serial) in [("int", "root", 2), ("leaf", "int", 3)] {
        openssl(
            dir,
            &format!("req -new -config {name}.cnf {key} -keyout {name}.key -out {name}.csr"),
        )?;
        openssl(
            dir,
            &format!(
                "x509 -req -in {name}.csr -CA {issuer}.pem -CAkey {issuer}.key \
                 -set_serial {serial} -days 7 -extfile {name}.ext -out {name}.pem"
            ),
        )?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

impl TlsFront {
    /// Starts the front before `backend` (`host:port` of the plain stand-in). An error
    /// when the certificates cannot be made (no `openssl` command).
    pub fn start(backend: &str) -> Result<TlsFront, String> {
        let dir = std::env::temp_dir().join(format!(
            "smsreg-bench-tls-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let front = TlsFront {
            endpoint: String::new(),
            trust_file: dir.join("trust.pem"),
            roots: 0,
            root_file: dir.join("root.pem"),
            dir,
        };
        front.start_in(backend)
    }

    fn start_in(mut self, backend: &str) -> Result<TlsFront, String> {
        let dir = self.dir.clone();
        make_chain(&dir)?;

        // The roots the function trusts: the system's bundle, as it would load it, plus ours.
        let mut trust = Vec::new();
        if let Some(system) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.exists()) {
            trust = read(system)?;
            if !trust.ends_with(b"\n") {
                trust.push(b'\n');
            }
        }
        trust.extend_from_slice(&read(&dir.join("root.pem"))?);
        std::fs::File::create(&self.trust_file)
            .and_then(|mut f| f.write_all(&trust))
            .map_err(|e| format!("{}: {e}", self.trust_file.display()))?;
        self.roots = CertificateDer::pem_slice_iter(&trust)
            .filter(Result::is_ok)
            .count();

        let chain: Vec<CertificateDer<'static>> = ["leaf.pem", "int.pem"]
            .iter()
            .map(|name| {
                CertificateDer::from_pem_slice(&read(&dir.join(name))?)
                    .map_err(|e| format!("{name}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(&read(&dir.join("leaf.key"))?)
            .map_err(|e| format!("leaf.key: {e}"))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        self.endpoint = format!("https://{}", listener.local_addr().unwrap());
        let backend = backend.to_owned();
        std::thread::spawn(move || {
            // Two workers: AWS answers a function's connections on servers of their own, so
            // the second handshake of a first request (the key and the project are read at
            // once) must not wait for the first one's signature here either.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_io()
                .build()
                .expect("a runtime for the TLS front");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("the front's listener");
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, backend) = (acceptor.clone(), backend.clone());
                    tokio::spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        // The stand-in's connection is made during the handshake.
                        let (tls, plain) = tokio::join!(
                            acceptor.accept(tcp),
                            tokio::net::TcpStream::connect(&backend)
                        );
                        let (Ok(mut tls), Ok(mut plain)) = (tls, plain) else {
                            return;
                        };
                        let _ = plain.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
        Ok(self)
    }
}
