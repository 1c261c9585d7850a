//! A lying log: an HTTP proxy in front of a real log that tampers with what
//! it serves, for the lying-log suites (client library, substituter with
//! Nix, witness). Its upstream can be switched at any moment, which is how a
//! split view is staged: clients behind different proxies (or the same
//! proxy at different times) see different logs signed with one key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use vouch_spec::tlog_proof::TlogProof;

/// What the proxy does to the answers passing through it.
#[derive(Clone, Debug, PartialEq)]
pub enum Lie {
    /// Pass everything through.
    Honest,
    /// Serve this checkpoint instead of the real one (at `/checkpoint` and
    /// inside the tlog-proofs of lookup answers).
    Checkpoint(Vec<u8>),
    /// Flip a byte in every hash tile and in the first hash of every proof
    /// in lookup answers.
    TileBitFlip,
    /// Change the NAR size in every entry returned by lookup.
    EntryBytes,
    /// Leave out the last entry of every entry bundle.
    DropEntry,
}

/// A running proxy.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    lie: Arc<Mutex<Lie>>,
    upstream: Arc<Mutex<String>>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (a base URL).
    pub fn start(upstream: &str) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let url = format!("http://{}", l.local_addr().expect("proxy address"));
        let lie = Arc::new(Mutex::new(Lie::Honest));
        let upstream = Arc::new(Mutex::new(upstream.to_string()));
        let (lie2, up2) = (lie.clone(), upstream.clone());
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (lie, up) = (lie2.clone(), up2.clone());
                std::thread::spawn(move || serve_one(conn, &lie, &up));
            }
        });
        Proxy { url, lie, upstream }
    }

    /// From now on, tell this lie.
    pub fn set(&self, lie: Lie) {
        *self.lie.lock().expect("lie lock") = lie;
    }

    /// From now on, forward to this log.
    pub fn route(&self, upstream: &str) {
        *self.upstream.lock().expect("upstream lock") = upstream.to_string();
    }
}

fn serve_one(conn: std::net::TcpStream, lie: &Mutex<Lie>, upstream: &Mutex<String>) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(read_half);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
    }
    let base = upstream.lock().map(|u| u.clone()).unwrap_or_default();
    let (status, mut body) = match ureq::get(&format!("{base}{path}")).call() {
        Ok(resp) => {
            let mut b = Vec::new();
            let _ = resp.into_reader().read_to_end(&mut b);
            (200, b)
        }
        Err(ureq::Error::Status(s, resp)) => {
            (s, resp.into_string().unwrap_or_default().into_bytes())
        }
        Err(_) => (502, Vec::new()),
    };
    let lie = lie.lock().map(|l| l.clone()).unwrap_or(Lie::Honest);
    if status == 200 {
        body = tamper(&lie, &path, body);
    }
    let mut c = conn;
    let _ = write!(
        c,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = c.write_all(&body);
}

fn tamper(lie: &Lie, path: &str, mut body: Vec<u8>) -> Vec<u8> {
    let lookup = path.starts_with("/vouch/v1/lookup/");
    let hash_tile = path.starts_with("/tile/") && !path.starts_with("/tile/entries/");
    match lie {
        Lie::Honest => body,
        Lie::Checkpoint(cp) if path == "/checkpoint" => cp.clone(),
        Lie::Checkpoint(cp) if lookup => edit_proofs(&body, |t| t.checkpoint = cp.clone()),
        Lie::TileBitFlip if lookup => edit_proofs(&body, |t| {
            if let Some(h) = t.proof.first_mut() {
                h.0[0] ^= 1
            }
        }),
        Lie::TileBitFlip if hash_tile && !body.is_empty() => {
            body[0] ^= 1;
            body
        }
        Lie::EntryBytes if lookup => edit_entries(&body),
        Lie::DropEntry if path.starts_with("/tile/entries/") => drop_last_entry(&body),
        _ => body,
    }
}

/// Applies `f` to every tlog-proof in a lookup answer.
pub fn edit_proofs(body: &[u8], f: impl Fn(&mut TlogProof)) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    if let Some(es) = v["entries"].as_array_mut() {
        for e in es {
            if let Some(t) = e["proof"]
                .as_str()
                .and_then(|p| TlogProof::parse(p.as_bytes()).ok())
            {
                let mut t = t;
                f(&mut t);
                e["proof"] = String::from_utf8_lossy(&t.encode()).into_owned().into();
            }
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Adds one to the NAR size of every entry in a lookup answer.
fn edit_entries(body: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.to_vec();
    };
    if let Some(es) = v["entries"].as_array_mut() {
        for e in es {
            if let Some(text) = e["entry"].as_str() {
                let edited: Vec<String> = text
                    .split('\n')
                    .map(|l| {
                        match l
                            .strip_prefix("nar-size ")
                            .and_then(|n| n.parse::<u64>().ok())
                        {
                            Some(n) => format!("nar-size {}", n + 1),
                            None => l.to_string(),
                        }
                    })
                    .collect();
                e["entry"] = edited.join("\n").into();
            }
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// An entry bundle without its last entry. (The proxy's requests carry no
/// `Accept-Encoding`, so the log answers them uncompressed.)
fn drop_last_entry(body: &[u8]) -> Vec<u8> {
    match vouch_spec::bundle::decode(body) {
        Ok(entries) => {
            let kept = &entries[..entries.len().saturating_sub(1)];
            vouch_spec::bundle::encode(kept).unwrap_or_default()
        }
        Err(_) => body.to_vec(),
    }
}
