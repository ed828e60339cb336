//! `hcgw demo`: the one command that shows the gateway working on a fresh machine. It
//! creates the dev PKI if missing (`certs/dev-pki.sh`), starts a simulator for every region
//! of `config/dev.toml` on the port of its `base_url`, starts the gateway, and prints
//! copy-paste curl commands with a client certificate. Regions without a simulator are
//! reported `down`: the demo never invents statuses. Only with the `sim` feature (default):
//! the simulators are the `hcgw-sim` crate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hcgw_sim::{SimEnv, SimOptions};

/// The repository root: the current directory when it holds `certs/dev-pki.sh`, else the
/// source tree the binary was built from.
pub fn repo_root() -> PathBuf {
    if Path::new("certs/dev-pki.sh").is_file() {
        PathBuf::from(".")
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }
}

/// Runs `certs/dev-pki.sh` into `<root>/certs/dev` (idempotent).
pub fn ensure_dev_pki(root: &Path) -> Result<PathBuf, String> {
    let out = root.join("certs/dev");
    hcgw_sim::dev_pki::run(root, &out, true)?;
    Ok(out)
}

/// Runs the demo until Ctrl-C.
pub async fn run(config_path: &Path) -> Result<(), String> {
    let root = repo_root();
    let pki = ensure_dev_pki(&root)?;
    let config_path = if config_path.is_relative() && !config_path.exists() {
        root.join(config_path)
    } else {
        config_path.to_owned()
    };
    let config = crate::config::load(&config_path).map_err(|e| e.to_string())?;
    let _log = crate::logging::init(config.gateway.log_format, &config.gateway.log_level);

    let mut sims = Vec::new();
    for (region, entry) in config.regions.iter().filter(|(_, e)| e.enabled) {
        let Some(sim) = hcgw_sim::for_region(*region) else {
            tracing::warn!(
                region = region.as_str(),
                "no simulator for this region in this build: it will be reported down"
            );
            continue;
        };
        let url = reqwest::Url::parse(&entry.base_url)
            .map_err(|e| format!("regions.{region}.base_url: {e}"))?;
        let port = url.port_or_known_default().unwrap_or(0);
        let addr = ([127, 0, 0, 1], port).into();
        let running = hcgw_sim::spawn(
            sim,
            &SimOptions::default(),
            SimEnv {
                pki_dir: pki.clone(),
            },
            addr,
        )
        .await?;
        sims.push(running);
    }
    let gw = crate::app::start(config).await.map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    print_banner(&gw, &pki, &sims);
    crate::signals::wait_for_signal().await;
    gw.shutdown().await;
    Ok(())
}

fn print_banner(gw: &crate::app::Gateway, pki: &Path, sims: &[hcgw_sim::RunningSim]) {
    let pki = pki.display();
    let url = format!("https://localhost:{}", gw.api_addr.port());
    // The dev PKI writes a curl config file per client (CA bundle, certificate, key).
    let curl = |client: &str| format!("curl -s -K {pki}/curl/{client}.conf");
    let json = "-H 'content-type: application/json'";
    // Synthetic subjects from the simulators (never real people).
    let subject = |region: hcgw_adapters::RegionId, n: usize| {
        sims.iter()
            .find(|s| s.region == region)
            .and_then(|s| s.context.population.subjects().get(n).cloned())
    };
    println!();
    println!(
        "hcgw demo: gateway {} on {url} (mTLS), admin on http://{}",
        gw.state.config.gateway.name, gw.admin_addr
    );
    println!(
        "simulated regions: {}",
        if sims.is_empty() {
            "none (regions are reported down)".to_owned()
        } else {
            sims.iter()
                .map(|s| format!("{} {}", s.region, s.base_url()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!();
    println!("Who am I (as the Shanghai platform):");
    println!("  {} {url}/v1/whoami", curl("platform-shanghai"));
    println!("Regions, their state and the agreements in force:");
    println!("  {} {url}/v1/regions", curl("ops"));
    if let Some(s) = subject(hcgw_adapters::RegionId::Suzhou, 1) {
        println!("Look up a Suzhou QR code (platform):");
        println!(
            "  {} {json} -d '{{\"region\":\"suzhou\",\"subject\":{{\"qr\":\"{}\"}},\"purpose\":\"arrival_registration\"}}' {url}/v1/lookup",
            curl("platform-shanghai"),
            s.qr
        );
        println!("Look up the same person by identity (platform):");
        println!(
            "  {} {json} -d '{{\"region\":\"suzhou\",\"subject\":{{\"id_type\":\"resident_id\",\"id_number\":\"{}\",\"name\":\"{}\"}}}}' {url}/v1/lookup",
            curl("platform-shanghai"),
            s.id_number,
            s.name
        );
    }
    if let Some(s) = subject(hcgw_adapters::RegionId::Guangzhou, 0) {
        println!(
            "Verify a scanned Guangzhou code at a Shanghai gate (checkpoint: register_locally, no YRD agreement):"
        );
        println!(
            "  {} {json} -d '{{\"qr\":\"{}\",\"checkpoint\":\"SH-HONGQIAO-RAIL-G12\"}}' {url}/v1/verify",
            curl("checkpoint-shanghai"),
            s.qr
        );
    }
    if let (Some(a), Some(b)) = (
        subject(hcgw_adapters::RegionId::Hangzhou, 2),
        subject(hcgw_adapters::RegionId::Sukang, 3),
    ) {
        println!("A batch (platform):");
        println!(
            "  {} {json} -d '{{\"items\":[{{\"region\":\"hangzhou\",\"subject\":{{\"qr\":\"{}\"}}}},{{\"region\":\"sukang\",\"subject\":{{\"qr\":\"{}\"}}}}]}}' {url}/v1/lookup/batch",
            curl("platform-shanghai"),
            a.qr,
            b.qr
        );
    }
    if let Some(s) = sims.first() {
        println!("Synthetic subjects of a simulator, with the status each is meant to produce:");
        println!(
            "  curl -s '{}/_sim/subjects?limit=5'",
            s.base_url()
                .replace("https://localhost", "https://127.0.0.1")
        );
    }
    println!("Health (plain HTTP, admin port):");
    println!("  curl -s http://{}/readyz", gw.admin_addr);
    println!();
    println!("Press Ctrl-C to stop.");
}
