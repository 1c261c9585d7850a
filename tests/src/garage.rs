//! A real S3-compatible object store for the tests: Garage
//! (`cargo install garage`, as `.ci/install-deps` does), one node on
//! loopback with one bucket and one access key, and its website endpoint
//! serving the bucket anonymously (what a CDN in front of a bucket does).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{free_port, temp_dir, wait_port, Proc};

/// The access key id (Garage's form: `GK` and 24 hex digits).
pub const ACCESS_KEY: &str = "GK0123456789abcdef01234567";
/// Its secret (64 hex digits).
pub const SECRET_KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The S3 region Garage is configured with.
pub const REGION: &str = "garage";

/// A running Garage.
pub struct Garage {
    _proc: Proc,
    /// The bucket.
    pub bucket: String,
    /// The S3 API endpoint, `http://127.0.0.1:PORT`.
    pub s3: String,
    /// The website endpoint's address, `127.0.0.1:PORT` (requests name the
    /// bucket in `Host`, see [`Garage::web_host`]).
    pub web: String,
    /// Its directory.
    pub dir: PathBuf,
}

/// The `garage` binary: `$GARAGE`, else on `PATH`.
pub fn binary() -> String {
    std::env::var("GARAGE").unwrap_or_else(|_| "garage".into())
}

impl Garage {
    /// Starts a single node with `bucket` readable and writable by
    /// [`ACCESS_KEY`], and served anonymously on its website endpoint.
    pub fn start(bucket: &str) -> Garage {
        let dir = temp_dir("garage");
        let (rpc, s3, web) = (free_port(), free_port(), free_port());
        let conf = dir.join("garage.toml");
        std::fs::write(
            &conf,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"lmdb\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{SECRET_KEY}\"\n\
                 [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\
                 [s3_web]\nbind_addr = \"127.0.0.1:{web}\"\nroot_domain = \".web.garage.localhost\"\n",
                d = dir.display()
            ),
        )
        .expect("writing garage.toml");
        let proc = Proc(
            Command::new(binary())
                .arg("-c")
                .arg(&conf)
                .args(["server", "--single-node", "--default-bucket"])
                .env("GARAGE_DEFAULT_ACCESS_KEY", ACCESS_KEY)
                .env("GARAGE_DEFAULT_SECRET_KEY", SECRET_KEY)
                .env("GARAGE_DEFAULT_BUCKET", bucket)
                .env("RUST_LOG", "garage=warn")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("garage.log")).expect("garage log"))
                .spawn()
                .expect("starting garage (cargo install garage, as .ci/install-deps does)"),
        );
        wait_port(s3);
        wait_port(web);
        // Serve the bucket on the website endpoint (anonymous reads).
        crate::wait_until("garage to serve the bucket as a website", 30, || {
            Command::new(binary())
                .arg("-c")
                .arg(&conf)
                .args(["bucket", "website", "--allow", bucket])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        Garage {
            _proc: proc,
            bucket: bucket.to_string(),
            s3: format!("http://127.0.0.1:{s3}"),
            web: format!("127.0.0.1:{web}"),
            dir,
        }
    }

    /// The `Host` under which the website endpoint serves the bucket.
    pub fn web_host(&self) -> String {
        format!("{}.web.garage.localhost", self.bucket)
    }

    /// The `[publish.s3]` table for a log publishing into it.
    pub fn publish_s3_toml(&self) -> String {
        format!(
            "[publish.s3]\nendpoint = \"{}\"\nregion = \"{REGION}\"\nallow_http = true\npath_style = true\n",
            self.s3
        )
    }

    /// The environment that carries the credentials.
    pub fn env(&self) -> [(&'static str, &'static str); 2] {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ]
    }
}
