//! The monitor's web view in a real headless browser (Debian's chromium
//! through chromedriver): a planted disagreement is found by searching its
//! store path's hash part, its page shows both NAR hashes and both
//! builders, a key name made of markup is shown as text and never run, and
//! every page has its JSON twin and a strict Content-Security-Policy.
//!
//! The screenshots it takes are the README's: set `VOUCH_SCREENSHOT_DIR`
//! to `tests/screenshots` to refresh them (by default they go to
//! `target/screenshots`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;
use vouch_spec::nix::narinfo::format_sha256;
use vouch_spec::nix::NixSecretKey;
use vouch_tests::webdriver::{self, Browser};
use vouch_tests::{
    attestation, binary, builder, free_port, store_path, temp_dir, wait_until, Log, Proc,
};

const SCRIPT_NAME: &str = "<script>alert(1)</script>";
const IMG_NAME: &str = "<img/src=x/onerror=alert(2)>";

fn screenshots() -> PathBuf {
    match std::env::var_os("VOUCH_SCREENSHOT_DIR") {
        Some(d) => PathBuf::from(d),
        None => vouch_tests::bin_dir().join("..").join("screenshots"),
    }
}

fn get(url: &str) -> (u16, String, String) {
    let r = match ureq::get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let csp = r
        .header("content-security-policy")
        .unwrap_or_default()
        .to_string();
    (r.status(), csp, r.into_string().unwrap_or_default())
}

#[test]
fn the_web_view_shows_a_planted_disagreement_and_never_runs_a_name() {
    assert!(
        webdriver::available(),
        "chromium and chromedriver are needed (.ci/install-deps installs them)"
    );
    let dir = temp_dir("monitor-web");
    let log = Log::start("");
    let farm = builder(1);
    let rebuilder = NixSecretKey::from_seed(SCRIPT_NAME, &[77; 32]).unwrap();
    let other = NixSecretKey::from_seed(IMG_NAME, &[78; 32]).unwrap();
    let mut body = Vec::new();
    for i in 0..60 {
        body.extend(attestation(&farm, i, 0).encode());
        body.extend(attestation(&rebuilder, i, u8::from(i == 7)).encode());
        if i % 2 == 0 {
            body.extend(attestation(&other, i, 0).encode());
        }
    }
    let (status, answer) = log.submit(&body, false);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    // The markup-named key hands over to another: the transition tables
    // show its name as text too.
    let handover = vouch_spec::transition::Transition::handover(&other, &builder(9));
    let (status, answer) = vouch_tests::response(
        ureq::post(&format!("{}/vouch/v1/transition", log.url))
            .set("Content-Type", "text/plain")
            .send_bytes(&handover.encode()),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let total = 60 + 60 + 30 + 1;

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _monitor = Proc(
        Command::new(binary("vouch-witness"))
            .args(["monitor", "--log", &log.url, "--vkey", &log.vkey, "--state"])
            .arg(dir.join("monitor"))
            .args([
                "--interval-secs",
                "1",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("VOUCH_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the monitor reads every entry", 60, || {
        ureq::get(&format!("{base}/api/overview"))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .is_some_and(|v| v["entries"] == total)
    });

    let disputed = store_path(7);
    let hash_part = disputed.hash_part().to_string();
    let good = format_sha256(&attestation(&farm, 7, 0).nar_hash);
    let bad = format_sha256(&attestation(&rebuilder, 7, 1).nar_hash);
    assert_ne!(good, bad);

    let shots = screenshots();
    let b = Browser::start(1280, 1000);
    b.goto(&base);
    assert!(b.title().contains("Overview"), "{}", b.title());
    let cards = b.find("div.cards").text();
    assert!(cards.contains(&total.to_string()), "{cards}");
    assert!(
        b.find("pre").text().contains(vouch_tests::ORIGIN),
        "the latest checkpoint is shown"
    );
    assert_eq!(
        b.execute("return [...document.images].every(i => i.complete && i.naturalWidth > 0)"),
        Value::Bool(true),
        "the plots load"
    );
    let transitions = b.find("#transitions").text();
    assert!(
        transitions.contains(IMG_NAME) && transitions.contains(builder(9).name()),
        "{transitions}"
    );
    b.screenshot(&shots.join("monitor-overview.png"));

    // Search by hash part: the single match opens the path's page.
    b.find("input[name=q]").send_keys(&hash_part);
    b.find("header button[type=submit]").follow();
    assert_eq!(b.find("#path").text(), disputed.full());
    assert_eq!(b.find("#verdict").text(), "Builders disagree on this path.");
    let table = b.find("table").text();
    assert!(
        table.contains(&good) && table.contains(&bad),
        "both hashes: {table}"
    );
    assert!(table.contains("builder-1.vouch.test-1"), "{table}");
    // The markup key name is text on the page, not an element.
    assert!(
        table.contains(SCRIPT_NAME),
        "the name is shown as text: {table}"
    );
    b.screenshot(&shots.join("monitor-path.png"));
    assert_eq!(
        b.execute("return document.querySelectorAll('script, img[src=\"x\"]').length"),
        Value::from(0)
    );
    assert_eq!(b.alert_text(), None, "no script ran");

    // The disagreements list leads to the disagreement's page.
    b.find("header a[href='/disagreements']").follow();
    let links = b.find_all("main table a");
    assert_eq!(links.len(), 1, "one disagreement");
    links[0].follow();
    let page = b.find("main").text();
    assert!(page.contains(&good) && page.contains(&bad), "{page}");
    assert!(page.contains(SCRIPT_NAME) && page.contains("builder-1.vouch.test-1"));
    b.screenshot(&shots.join("monitor-disagreement.png"));

    // The builder named with markup: its page, its name as text.
    b.goto(&format!("{base}/builders"));
    let names: Vec<String> = b
        .find_all("main table a")
        .iter()
        .map(|a| a.text())
        .collect();
    assert!(names.iter().any(|n| n == IMG_NAME), "{names:?}");
    let link = b
        .find_all("main table a")
        .into_iter()
        .find(|a| a.text() == SCRIPT_NAME)
        .expect("the rebuilder's link");
    link.follow();
    assert_eq!(b.find("#builder").text(), SCRIPT_NAME);
    assert!(b.find("div.cards").text().contains("60"), "60 attestations");
    b.screenshot(&shots.join("monitor-builder.png"));
    assert_eq!(
        b.execute("return document.querySelectorAll('script, img[src=\"x\"]').length"),
        Value::from(0)
    );
    assert_eq!(b.alert_text(), None, "no script ran");
    drop(b);

    // Every page has its JSON twin, and a strict CSP.
    let (status, csp, text) = get(&format!("{base}/api/search?q={hash_part}"));
    assert_eq!(status, 200);
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let found: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(found[0]["path"], disputed.full());
    assert_eq!(found[0]["disagreement"], true);
    let hashes: std::collections::BTreeSet<&str> = found[0]["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["nar_hash"].as_str())
        .collect();
    assert_eq!(hashes, [good.as_str(), bad.as_str()].into_iter().collect());
    let (status, csp, _) = get(&format!("{base}/"));
    assert_eq!(status, 200);
    assert!(csp.contains("script-src") || csp.contains("default-src 'none'"));
    let (status, _, text) = get(&format!("{base}/api/disagreements"));
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // Unknown things are 404 with a reason, not errors.
    let (status, _, text) = get(&format!(
        "{base}/path/00000000000000000000000000000000-none"
    ));
    assert_eq!(status, 404);
    assert!(text.contains("no attestation of"), "{text}");
    let (status, _, _) = get(&format!("{base}/api/builder/nobody:AAAA"));
    assert_eq!(status, 404);
    let _ = std::fs::remove_dir_all(&dir);
}
