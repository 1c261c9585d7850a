//! Where the log publishes its read path (`spec/PROTOCOL.md` §4.3): a
//! directory (for nginx, or a CDN pulling from disk) or an S3-compatible
//! bucket, behind one method.
//!
//! Contract: [`Backend::put`] returns `Ok` once the object is readable,
//! whole, with exactly these bytes, at `key` under the backend's public
//! prefix (after an `Err` it may be absent, the old one or the new one,
//! never torn to a reader); every object put before a [`Backend::sync`]
//! that returned `Ok` survives a crash of the machine. The publisher syncs
//! before it puts a checkpoint and before it advances its marker. Every put
//! is idempotent: the publisher repeats puts after a crash, always with the
//! same bytes for the same key except the checkpoint, which only moves
//! forward. Nothing is ever deleted.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

/// The tlog-tiles headers an object is served with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Cache-Control`.
    pub cache_control: &'static str,
}

/// Tiles and bundles (full or partial: a `.p/W` path never changes).
pub const IMMUTABLE: Meta = Meta {
    content_type: "application/octet-stream",
    cache_control: "public, max-age=31536000, immutable",
};

/// The checkpoint: a few seconds, so readers see new ones soon.
pub const CHECKPOINT: Meta = Meta {
    content_type: "text/plain; charset=utf-8",
    cache_control: "public, max-age=5",
};

/// A tlog-proof beside a narinfo: it never changes once written.
pub const PROOF: Meta = Meta {
    content_type: "text/plain; charset=utf-8",
    cache_control: "public, max-age=31536000, immutable",
};

/// Why an object could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// Writing a file failed.
    #[error("writing {path}: {err}")]
    File {
        /// The file.
        path: String,
        /// The error.
        err: std::io::Error,
    },
    /// The object store refused or failed.
    #[error("storing {key} in {bucket}: {msg}")]
    Store {
        /// The bucket URL.
        bucket: String,
        /// The object key.
        key: String,
        /// What failed.
        msg: String,
    },
    /// The destination URL is not one this log can publish to.
    #[error("publish destination {0:?}: want file:///absolute/dir or s3://bucket[/prefix]")]
    Url(String),
}

/// Where objects go (see the module documentation for the contract).
pub trait Backend: Send + Sync + 'static {
    /// Stores `data` at `key` (a relative path such as `tile/0/000`).
    fn put(&self, key: &str, data: &[u8], meta: Meta) -> Result<(), ObjectError>;
    /// Makes every object put so far durable (a no-op where puts are).
    fn sync(&self) -> Result<(), ObjectError> {
        Ok(())
    }
    /// Where it publishes, for logs and errors.
    fn describe(&self) -> String;
}

/// A directory: each object a file, written to a temporary name and
/// renamed into place (readers never see a partial file); [`Backend::sync`]
/// is one `syncfs` of the filesystem, rather than two fsyncs per object.
pub struct FsBackend {
    root: PathBuf,
}

impl FsBackend {
    /// Objects under `root` (created if needed).
    pub fn new(root: PathBuf) -> FsBackend {
        FsBackend { root }
    }
}

impl Backend for FsBackend {
    fn put(&self, key: &str, data: &[u8], _meta: Meta) -> Result<(), ObjectError> {
        let path = self.root.join(key);
        let err = |err| ObjectError::File {
            path: path.display().to_string(),
            err,
        };
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(err)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(data).map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(err)?;
        Ok(())
    }

    fn sync(&self) -> Result<(), ObjectError> {
        let err = |err| ObjectError::File {
            path: self.root.display().to_string(),
            err,
        };
        std::fs::create_dir_all(&self.root).map_err(err)?;
        let d = std::fs::File::open(&self.root).map_err(err)?;
        rustix::fs::syncfs(&d).map_err(|e| err(e.into()))
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

/// An S3-compatible bucket through `object_store`; credentials, region and
/// endpoint from the standard `AWS_*` environment variables unless given.
pub struct S3Backend {
    store: Arc<dyn object_store::ObjectStore>,
    prefix: String,
    url: String,
    runtime: tokio::runtime::Runtime,
}

/// How to reach an S3-compatible service.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// The service's URL (say `http://127.0.0.1:3900` for Garage); unset:
    /// AWS (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// The region (unset: `AWS_REGION`, else `us-east-1`).
    pub region: Option<String>,
    /// Allow `http://` endpoints (a service on loopback).
    pub allow_http: bool,
    /// Path-style requests (`endpoint/bucket/key`), which most
    /// S3-compatible services want.
    pub path_style: bool,
}

impl S3Backend {
    /// The bucket and key prefix of `s3://bucket[/prefix]`.
    pub fn new(url: &str, s: &S3Settings) -> Result<S3Backend, ObjectError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| ObjectError::Url(url.into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ObjectError::Url(url.into()));
        }
        let mut b = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_allow_http(s.allow_http)
            .with_virtual_hosted_style_request(!s.path_style);
        if let Some(e) = &s.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &s.region {
            b = b.with_region(r);
        }
        let store = b.build().map_err(|e| ObjectError::Store {
            bucket: url.into(),
            key: String::new(),
            msg: e.to_string(),
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ObjectError::Store {
                bucket: url.into(),
                key: String::new(),
                msg: format!("starting its runtime: {e}"),
            })?;
        Ok(S3Backend {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
            runtime,
        })
    }
}

impl Backend for S3Backend {
    fn put(&self, key: &str, data: &[u8], meta: Meta) -> Result<(), ObjectError> {
        use object_store::{Attribute, Attributes, PutOptions, PutPayload};
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, meta.content_type.into());
        attributes.insert(Attribute::CacheControl, meta.cache_control.into());
        let opts = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        let path = object_store::path::Path::from(full.as_str());
        let payload = PutPayload::from(data.to_vec());
        self.runtime
            .block_on(self.store.put_opts(&path, payload, opts))
            .map(|_| ())
            .map_err(|e| ObjectError::Store {
                bucket: self.url.clone(),
                key: full,
                msg: e.to_string(),
            })
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// The backend a destination URL names.
pub fn open(url: &str, s3: &S3Settings) -> Result<Arc<dyn Backend>, ObjectError> {
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(ObjectError::Url(url.into()));
        }
        return Ok(Arc::new(FsBackend::new(PathBuf::from(path))));
    }
    if url.starts_with("s3://") {
        return Ok(Arc::new(S3Backend::new(url, s3)?));
    }
    Err(ObjectError::Url(url.into()))
}
