//! Real TLS on loopback: a certificate authority made by the test (with
//! the `openssl` command), and Debian's nginx terminating TLS in front of
//! the Vouch processes and serving binary caches from disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{free_port, temp_dir, wait_port};

/// A CA and the files it issued, in one directory.
pub struct TestCa {
    /// The directory.
    pub dir: PathBuf,
    /// The CA certificate (PEM): what clients trust.
    pub cert: PathBuf,
    key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// A new CA named `name`, valid for a day.
    pub fn new(name: &str) -> TestCa {
        let dir = temp_dir("ca");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &dir,
        );
        TestCa {
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
            dir,
        }
    }

    /// A server certificate for these DNS names; returns (cert, key).
    pub fn issue(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        std::fs::write(
            self.dir.join(format!("{file}.ext")),
            format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
                sans.join(",")
            ),
        )
        .expect("writing the extensions file");
        openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{file}.key"),
                "-out",
                &format!("{file}.csr"),
                "-subj",
                &format!("/CN={}", names[0]),
            ],
            &self.dir,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &format!("{file}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &format!("{file}.pem"),
                "-extfile",
                &format!("{file}.ext"),
            ],
            &self.dir,
        );
        let _ = &self.key;
        (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        )
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What one TLS port of nginx serves.
pub enum Site {
    /// Proxies to this plain-HTTP address (`127.0.0.1:PORT`), adding
    /// `X-Forwarded-For` and connecting from `127.0.0.9` (so a backend can
    /// trust exactly that address as its proxy).
    Proxy(String),
    /// Serves this directory as static files (a binary cache).
    Files(PathBuf),
    /// A CDN in front of a bucket: proxies to an object store's website
    /// endpoint (`to`, `127.0.0.1:PORT`) with `Host: host` naming the
    /// bucket.
    Bucket {
        /// The website endpoint.
        to: String,
        /// The host naming the bucket.
        host: String,
    },
}

/// The address nginx connects to backends from.
pub const PROXY_ADDRESS: &str = "127.0.0.9";

/// A running nginx (stopped gracefully when dropped, workers included).
pub struct Nginx {
    child: std::process::Child,
    /// Its directory (config, logs, temporary files).
    pub dir: PathBuf,
    /// `https://localhost:PORT` per site, in order.
    pub urls: Vec<String>,
    /// The ports, in order.
    pub ports: Vec<u16>,
}

impl Nginx {
    /// Starts nginx with one TLS port per site, serving `cert`/`key`.
    pub fn start(cert: &Path, key: &Path, sites: &[Site]) -> Nginx {
        let dir = temp_dir("nginx");
        let ports: Vec<u16> = sites.iter().map(|_| free_port()).collect();
        let mut servers = String::new();
        for (site, port) in sites.iter().zip(&ports) {
            let body = match site {
                Site::Proxy(to) => format!(
                    "location / {{ proxy_pass http://{to}; proxy_bind {PROXY_ADDRESS}; \
                     proxy_set_header Host $host; \
                     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; \
                     proxy_http_version 1.1; proxy_buffering off; proxy_request_buffering off; \
                     proxy_read_timeout 120s; }}"
                ),
                Site::Files(root) => format!("root {}; location / {{ }}", root.display()),
                Site::Bucket { to, host } => format!(
                    "location / {{ proxy_pass http://{to}; proxy_set_header Host {host}; \
                     proxy_http_version 1.1; }}"
                ),
            };
            servers.push_str(&format!(
                "server {{ listen 127.0.0.1:{port} ssl; server_name localhost; \
                 ssl_certificate {}; ssl_certificate_key {}; {body} }}\n",
                cert.display(),
                key.display()
            ));
        }
        let d = dir.display();
        let user = if rustix::process::geteuid().is_root() {
            "user root;"
        } else {
            ""
        };
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "{user}\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                 events {{ worker_connections 512; }}\n\
                 http {{\n access_log off;\n client_max_body_size 32m;\n\
                 client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;\n\
                 uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n types {{ text/plain narinfo; }}\n{servers}}}\n"
            ),
        )
        .expect("writing nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx (Debian's nginx package) must be installed");
        for p in &ports {
            wait_port(*p);
        }
        Nginx {
            child,
            urls: ports
                .iter()
                .map(|p| format!("https://localhost:{p}"))
                .collect(),
            ports,
            dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (SIGKILL would orphan them).
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
