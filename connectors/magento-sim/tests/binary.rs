//! The `magento-sim` binary as the benchmark starts it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The running binary; killed when dropped.
struct Sim(std::process::Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `args`; returns it and the base URL from its banner.
fn start(args: &[&str]) -> (Sim, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_magento-sim"))
        .args(["--products", "2", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("magento-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let sim = Sim(child);
    let mut banner = String::new();
    BufReader::new(stdout).read_line(&mut banner).unwrap();
    let banner: serde_json::Value = serde_json::from_str(&banner).expect("a JSON banner");
    let base_url = banner["base_url"].as_str().expect("base_url").to_string();
    (sim, base_url.trim_end_matches('/').to_string())
}

#[tokio::test]
async fn latency_ms_makes_every_rest_answer_take_that_long() {
    let (_sim, base_url) = start(&["--latency-ms", "400"]);
    let started = Instant::now();
    // Unsigned, so refused: but only after the store's time, like any REST answer.
    let answer = reqwest::get(format!(
        "{base_url}/rest/V1/products?searchCriteria[pageSize]=1"
    ))
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(answer.status(), 401);
    assert!(took >= Duration::from_millis(400), "answered in {took:?}");
}

#[test]
fn a_latency_that_is_not_a_number_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_magento-sim"))
        .args(["--port", "0", "--latency-ms", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--latency-ms must be a number"), "{stderr}");
}
