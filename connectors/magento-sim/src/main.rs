//! `magento-sim --port P --products N --seed S --store-views default,fr,de [--input-limits]
//! [--media-file-quirk] [--queue-mode mysql|amqp]`

use magento_sim::{MagentoSim, SimConfig};

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "magento-sim --port P --products N --seed S --store-views default,fr,de [--latency-ms MS] [--input-limits [--maximum-page-size N]] [--signature-form laminas|2.4.7+] [--legacy-last-page] [--media-file-quirk] [--queue-mode mysql|amqp]"
        );
        return std::process::ExitCode::SUCCESS;
    }
    let mut config = SimConfig::default();
    let parse = |name: &str| arg_value(&args, name);
    if let Some(p) = parse("--port") {
        match p.parse() {
            Ok(port) => config.port = port,
            Err(_) => {
                eprintln!("magento-sim: --port must be a number");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if let Some(n) = parse("--products") {
        match n.parse() {
            Ok(n) => config.products = n,
            Err(_) => {
                eprintln!("magento-sim: --products must be a number");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if let Some(s) = parse("--seed") {
        config.seed = s.parse().unwrap_or(1);
    }
    if let Some(views) = parse("--store-views") {
        config.store_views = views
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
    }
    // How long the store takes to answer each REST request (a real store builds a page of
    // 300 products in seconds, not microseconds).
    let latency = match parse("--latency-ms").map(|ms| ms.parse::<u64>()) {
        None => std::time::Duration::ZERO,
        Some(Ok(ms)) => std::time::Duration::from_millis(ms),
        Some(Err(_)) => {
            eprintln!("magento-sim: --latency-ms must be a number");
            return std::process::ExitCode::FAILURE;
        }
    };
    config.input_limits = args.iter().any(|a| a == "--input-limits");
    if let Some(form) = parse("--signature-form") {
        match magento_sim::SignatureForm::parse(&form) {
            Some(form) => config.signature_form = form,
            None => {
                eprintln!("magento-sim: --signature-form is laminas or 2.4.7+");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if let Some(max) = parse("--maximum-page-size") {
        match max.parse() {
            Ok(max) if max > 0 => config.maximum_page_size = max,
            _ => {
                eprintln!("magento-sim: --maximum-page-size must be a positive number");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if let Some(mode) = parse("--queue-mode") {
        match magento_sim::QueueMode::parse(&mode) {
            Some(mode) => config.queue_mode = mode,
            None => {
                eprintln!("magento-sim: --queue-mode is mysql or amqp");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    config.legacy_last_page = args.iter().any(|a| a == "--legacy-last-page");
    config.media_file_quirk = args.iter().any(|a| a == "--media-file-quirk");
    let sim = match MagentoSim::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("magento-sim: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if !latency.is_zero() {
        sim.set_faults(magento_sim::Faults {
            latency,
            ..Default::default()
        });
    }
    let c = sim.credentials();
    println!(
        "{}",
        serde_json::json!({
            "base_url": sim.base_url(), "consumer_key": c.consumer_key, "consumer_secret": c.consumer_secret,
            "access_token": c.access_token, "access_token_secret": c.access_token_secret,
        })
    );
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}
