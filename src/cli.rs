//! The `hcgw` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::signals::wait_for_signal;
#[cfg(feature = "sim")]
use hcgw_adapters::RegionId;

#[cfg(feature = "sim")]
use hcgw_sim::{SimEnv, SimOptions};

/// hcgw: federated health-code interoperability gateway.
#[derive(Parser, Debug)]
#[command(name = "hcgw", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file.
        #[arg(long, short, env = "HCGW_CONFIG")]
        config: PathBuf,
        /// Also stop when standard input closes (for supervisors and tests that own the
        /// process through a pipe).
        #[arg(long, hide = true)]
        stop_on_stdin_eof: bool,
    },
    /// Validate a configuration file (with the `HCGW_<SECTION>__<KEY>` environment
    /// overrides) and list every problem with its path.
    CheckConfig {
        /// Configuration file.
        file: PathBuf,
        /// Also print the effective configuration (file plus environment overrides,
        /// secrets redacted).
        #[arg(long)]
        print: bool,
    },
    /// Exit 0 when the admin port answers `/healthz` with 200, 1 otherwise (the container
    /// image's HEALTHCHECK: no curl needed).
    Healthcheck {
        /// The URL to ask (plain HTTP).
        #[arg(default_value = "http://127.0.0.1:9090/healthz")]
        url: String,
        /// Give up after this long (ms).
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Print a shell completion script (`hcgw completions bash > /etc/bash_completion.d/hcgw`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff: `hcgw man | man -l -`).
    Man,
    /// The demo: create the dev PKI if missing, start the region simulators and the gateway
    /// with `config/dev.toml`, and print copy-paste curl commands.
    #[cfg(feature = "sim")]
    Demo {
        /// Configuration file.
        #[arg(long, default_value = "config/dev.toml")]
        config: PathBuf,
    },
    /// The audit trail.
    Audit {
        /// What to do with it.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Proofs of what a gateway answered (docs/proofs.md).
    Proof {
        /// What to check.
        #[command(subcommand)]
        command: ProofCommand,
    },
    /// Run region simulators (for integrators, tests and benchmarks).
    #[cfg(feature = "sim")]
    Simulate {
        /// Regions to simulate (default: all).
        #[arg(long, value_delimiter = ',')]
        regions: Vec<RegionId>,
        /// Port of the first region; the others follow in the spec's order.
        #[arg(long, default_value_t = 7101)]
        base_port: u16,
        /// Address to listen on (`0.0.0.0` in a container).
        #[arg(long, default_value = "127.0.0.1")]
        host: std::net::IpAddr,
        /// Added latency per call (ms).
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Share of calls answered with the region's "system busy".
        #[arg(long, default_value_t = 0.0)]
        error_rate: f64,
        /// Share of subjects whose QR token is expired.
        #[arg(long, default_value_t = 0.05)]
        expired_share: f64,
        /// Share of subjects the region does not know.
        #[arg(long, default_value_t = 0.05)]
        not_found_share: f64,
        /// Subjects per region.
        #[arg(long, default_value_t = 1000)]
        population: usize,
        /// Seed of the population.
        #[arg(long, default_value_t = 2020)]
        seed: u64,
        /// The dev PKI directory.
        #[arg(long, default_value = "certs/dev")]
        pki: PathBuf,
    },
}

/// `hcgw audit …`.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain of audit files (directories: their `audit-*.jsonl` files),
    /// sorted by name, as one chain, and each directory's signed tree heads
    /// (`tree-heads.jsonl`: every root recomputed from the trail; signatures with `--key`).
    /// Exit 0 when intact, 1 naming the file and line.
    Verify {
        /// Audit files or directories.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A shipped `audit chain checkpoint` (`SEQ:HASH`) the files must contain:
        /// detects records removed from the end. Repeatable.
        #[arg(long = "checkpoint", value_name = "SEQ:HASH")]
        checkpoints: Vec<crate::audit::Checkpoint>,
        /// The answer-signing keys the tree heads' signatures are checked with: certificate
        /// PEM files, or the `GET /v1/signing-keys` document saved as JSON. Repeatable
        /// (current and previous keys).
        #[arg(long = "key", value_name = "FILE")]
        keys: Vec<PathBuf>,
    },
    /// List the signed tree heads of an audit directory (size, root, time, key id, and
    /// whether the signature verifies with `--key`). Exit 1 when a line is not a head or a
    /// signature does not verify.
    Checkpoints {
        /// The audit directory (or its `tree-heads.jsonl`).
        dir: PathBuf,
        /// The answer-signing keys: certificate PEM files, or the saved
        /// `GET /v1/signing-keys` document. Repeatable.
        #[arg(long = "key", value_name = "FILE")]
        keys: Vec<PathBuf>,
    },
}

/// `hcgw proof …`.
#[derive(Subcommand, Debug)]
pub enum ProofCommand {
    /// Check an answer saved with `curl -i`: its Content-Digest, its RFC 9421 signature
    /// against the signing keys, and show its audit receipt. Exit 0 when it holds, 1 when
    /// it does not, 2 when a file cannot be used.
    Verify {
        /// The saved answer (`curl -i … > answer.http`).
        answer: PathBuf,
        /// The signing keys: certificate PEM files, or the `GET /v1/signing-keys`
        /// document saved as JSON. Repeatable.
        #[arg(long = "key", required = true, value_name = "FILE")]
        keys: Vec<PathBuf>,
        /// The inclusion proof of the answer's receipt (`GET /v1/audit/proof/{seq}` saved
        /// as JSON): also check that its record is in the signed tree head.
        #[arg(long, value_name = "P.json")]
        proof: Option<PathBuf>,
        /// A checkpoint (`GET /v1/audit/checkpoints/latest` saved as JSON, kept earlier):
        /// the proof must be against exactly this signed tree head.
        #[arg(long, value_name = "C.json", requires = "proof")]
        checkpoint: Option<PathBuf>,
    },
}

/// Runs the command line; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file, print } => check_config(&file, print),
        Command::Healthcheck { url, timeout_ms } => {
            healthcheck(&url, Duration::from_millis(timeout_ms))
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "hcgw",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Man => {
            let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hcgw man: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    files,
                    checkpoints,
                    keys,
                },
        } => audit_verify(&files, &checkpoints, &keys),
        Command::Audit {
            command: AuditCommand::Checkpoints { dir, keys },
        } => audit_checkpoints(&dir, &keys),
        Command::Proof {
            command:
                ProofCommand::Verify {
                    answer,
                    keys,
                    proof,
                    checkpoint,
                },
        } => crate::proof::run_verify(&answer, &keys, proof.as_deref(), checkpoint.as_deref()),
        command => {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hcgw: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn check_config(file: &std::path::Path, print: bool) -> ExitCode {
    match crate::config::load_effective(file) {
        Ok((c, effective)) => {
            for w in crate::config::warnings(&c) {
                eprintln!("WARNING {w}");
            }
            // With --print, stdout is a valid TOML file: the summary is a comment.
            if print {
                print!("{effective}\n# ");
            }
            println!(
                "{}: ok ({} clients, {} local regions, {} peers, {} agreements)",
                file.display(),
                c.clients.len(),
                c.regions.values().filter(|r| r.enabled).count(),
                c.peers.len(),
                c.recognition.agreements.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `hcgw healthcheck`: one plain HTTP/1.1 GET; success only on status 200.
fn healthcheck(url: &str, timeout: Duration) -> ExitCode {
    match probe(url, timeout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hcgw healthcheck {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(url: &str, timeout: Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs (the admin port is plain HTTP)".into());
    }
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let addr = (host.trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("no answer: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status_line = line.lines().next().unwrap_or("").trim();
    let status = status_line.split_whitespace().nth(1);
    if status_line.starts_with("HTTP/") && status == Some("200") {
        Ok(())
    } else if status_line.is_empty() {
        Err("the connection closed without an answer".into())
    } else {
        Err(format!("answered {status_line:?}"))
    }
}

/// The verifying keys of `--key` files: certificate PEM files or saved `/v1/signing-keys`
/// documents ([`crate::proof::load_keys`], the one reader of keys for every command).
fn load_keys(paths: &[PathBuf]) -> Result<Vec<hcgw_core::signing::VerifyingKey>, String> {
    crate::proof::load_keys(paths)
        .map(|keys| keys.into_values().collect())
        .map_err(|e| e.to_string())
}

fn audit_verify(
    paths: &[PathBuf],
    checkpoints: &[crate::audit::Checkpoint],
    keys: &[PathBuf],
) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("hcgw audit verify: {e}");
        ExitCode::FAILURE
    };
    let keys = match load_keys(keys) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    if let [dir] = paths
        && dir.is_dir()
        && let Ok(below) = crate::audit::trails_below(dir)
        && !below.is_empty()
    {
        // DIR's own files (the dev configuration's trail) are one more trail.
        let own = crate::audit::trail_files(dir).is_ok_and(|f| !f.is_empty());
        let trails: Vec<PathBuf> = own.then(|| dir.clone()).into_iter().chain(below).collect();
        return audit_verify_trails(dir, &trails, checkpoints, &keys);
    }
    match verify_trail(paths, checkpoints, &keys, "") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One trail (`paths`, as one chain) and its signed tree heads; reports printed with
/// `label` in front.
fn verify_trail(
    paths: &[PathBuf],
    checkpoints: &[crate::audit::Checkpoint],
    keys: &[hcgw_core::signing::VerifyingKey],
    label: &str,
) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| Err(e.to_string());
    let files = match crate::audit::collect_files(paths) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    let report = match crate::audit::verify_with_checkpoints(&files, checkpoints) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    println!("{label}{report}");
    let heads: Vec<PathBuf> = paths
        .iter()
        .filter(|p| p.is_dir())
        .map(|d| d.join(crate::audit::HEADS_FILE))
        .filter(|f| f.is_file())
        .collect();
    if heads.is_empty() && !keys.is_empty() && label.is_empty() {
        return fail(&"--key given but no directory holds a tree-heads.jsonl to check");
    }
    for h in heads {
        if !report.from_genesis {
            return fail(&format!(
                "{}: signed tree heads cover the trail from seq 1, but the files start later",
                h.display()
            ));
        }
        match crate::audit::verify_heads(&files, &h, keys) {
            Ok(r) => println!(
                "{label}tree heads intact: {} head(s) in {}, latest tree size {}, signatures {}",
                r.heads,
                h.display(),
                r.latest_size.map_or("-".into(), |n| n.to_string()),
                if r.signatures_checked {
                    "verified"
                } else {
                    "not checked (no --key)"
                }
            ),
            Err(e) => return fail(&e),
        }
    }
    Ok(())
}

/// `hcgw audit verify DIR` where DIR's subdirectories hold trails (and DIR perhaps one
/// itself, shown as `.`): each verified on its own (a checkpoint belongs to one trail, so
/// naming one here is refused).
fn audit_verify_trails(
    dir: &std::path::Path,
    trails: &[PathBuf],
    checkpoints: &[crate::audit::Checkpoint],
    keys: &[hcgw_core::signing::VerifyingKey],
) -> ExitCode {
    let names: Vec<String> = trails
        .iter()
        .map(|t| match t.strip_prefix(dir) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => t.display().to_string(),
        })
        .collect();
    if !checkpoints.is_empty() {
        eprintln!(
            "hcgw audit verify: {}: holds {} trails ({}); a --checkpoint belongs to one: name its directory",
            dir.display(),
            trails.len(),
            names.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let mut broken = 0;
    for (trail, name) in trails.iter().zip(&names) {
        match verify_trail(std::slice::from_ref(trail), &[], keys, &format!("{name}: ")) {
            Ok(()) => {}
            Err(e) => {
                broken += 1;
                eprintln!("hcgw audit verify: {name}: {e}");
            }
        }
    }
    if broken == 0 {
        println!("{}: {} trails, all intact", dir.display(), trails.len());
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "hcgw audit verify: {}: {broken} of {} trails broken",
            dir.display(),
            trails.len()
        );
        ExitCode::FAILURE
    }
}

fn audit_checkpoints(dir: &std::path::Path, keys: &[PathBuf]) -> ExitCode {
    let keys = match load_keys(keys) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("hcgw audit checkpoints: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = if dir.is_dir() {
        dir.join(crate::audit::HEADS_FILE)
    } else {
        dir.to_path_buf()
    };
    let heads = match crate::audit::read_heads(&path) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("hcgw audit checkpoints: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    println!("line  tree_size  time                  key_id  signature  root_hash");
    for (line, head) in heads {
        match head {
            Ok(h) => {
                let sig = match crate::audit::head_signature(&h, &keys) {
                    None => "unchecked",
                    Some(true) => "ok",
                    Some(false) => {
                        ok = false;
                        "BAD"
                    }
                };
                println!(
                    "{line:<5} {:<10} {:<21} {:<7} {sig:<10} {}",
                    h.tree_size,
                    h.time,
                    h.key_id.chars().take(7).collect::<String>(),
                    h.root_hash
                );
            }
            Err(e) => {
                ok = false;
                println!("{line:<5} not a tree head: {e}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve {
            config,
            stop_on_stdin_eof,
        } => {
            let config = crate::config::load(&config).map_err(|e| e.to_string())?;
            let _log = crate::logging::init(config.gateway.log_format, &config.gateway.log_level);
            let drain = Duration::from_secs(config.shutdown.drain_s);
            let gw = crate::app::start(config).await.map_err(|e| e.to_string())?;
            // Standard input closing (a supervising test harness gone) stops without the
            // drain window: nobody routes traffic to that instance.
            let signalled = if stop_on_stdin_eof {
                tokio::select! {
                    () = wait_for_signal() => true,
                    () = stdin_closed() => false,
                }
            } else {
                wait_for_signal().await;
                true
            };
            if signalled && !drain.is_zero() {
                gw.begin_drain();
                // A second SIGTERM/SIGINT ends the drain window at once; in-flight requests
                // still get their grace and the audit trail is still flushed.
                tokio::select! {
                    () = tokio::time::sleep(drain) => {}
                    () = wait_for_signal() => tracing::warn!("second signal: drain window cut short"),
                }
            }
            tracing::info!("shutting down: the API listener stops accepting");
            gw.shutdown().await;
            tracing::info!("stopped: audit trail flushed");
            Ok(())
        }
        #[cfg(feature = "sim")]
        Command::Demo { config } => crate::demo::run(&config).await,
        #[cfg(feature = "sim")]
        Command::Simulate {
            regions,
            base_port,
            host,
            latency_ms,
            error_rate,
            expired_share,
            not_found_share,
            population,
            seed,
            pki,
        } => {
            let shares_ok = (0.0..=1.0).contains(&error_rate)
                && expired_share >= 0.0
                && not_found_share >= 0.0
                && expired_share + not_found_share <= 1.0;
            if !shares_ok {
                return Err("--error-rate, --expired-share and --not-found-share are shares between 0 and 1".into());
            }
            let _log = crate::logging::init(crate::config::LogFormat::Pretty, "info");
            let regions = if regions.is_empty() {
                RegionId::ALL.to_vec()
            } else {
                regions
            };
            let options = SimOptions {
                latency: Duration::from_millis(latency_ms),
                error_rate,
                expired_share,
                not_found_share,
                population,
                seed,
            };
            let env = SimEnv { pki_dir: pki };
            let mut running = Vec::new();
            for region in regions {
                let Some(sim) = hcgw_sim::for_region(region) else {
                    return Err(format!("no simulator for {region} in this build"));
                };
                let port =
                    base_port + RegionId::ALL.iter().position(|r| *r == region).unwrap_or(0) as u16;
                let r = hcgw_sim::spawn(sim, &options, env.clone(), (host, port).into()).await?;
                println!("{:<10} {}", region.as_str(), r.base_url());
                running.push(r);
            }
            // The line scripts wait for: every simulator is listening.
            println!("ready: {} simulators listening", running.len());
            wait_for_signal().await;
            Ok(())
        }
        Command::CheckConfig { .. }
        | Command::Audit { .. }
        | Command::Proof { .. }
        | Command::Healthcheck { .. }
        | Command::Completions { .. }
        | Command::Man => {
            unreachable!("handled before the runtime starts")
        }
    }
}

/// Resolves when standard input reaches end of file.
async fn stdin_closed() {
    use tokio::io::AsyncReadExt;
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}
