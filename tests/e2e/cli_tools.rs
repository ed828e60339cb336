//! The command line's tools for operators and packagers: `hcgw healthcheck` (the container
//! image's HEALTHCHECK), `hcgw completions <shell>`, `hcgw man`, `hcgw --version`; logs
//! redirected to a file are free of colour escapes.

use std::process::{Command, Output};

use crate::support::*;

fn hcgw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn healthcheck_succeeds_only_on_a_200_from_the_admin_port() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&TlsPaths::standard(), &dir.path().join("audit"), "");
    let gw = start_gateway(&text, dir.path()).await;
    let url = format!("http://{}/healthz", gw.admin_addr);
    let out = tokio::task::spawn_blocking(move || hcgw(&["healthcheck", &url]))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A path the admin port does not serve: 404, a failure naming it.
    let url = format!("http://{}/nope", gw.admin_addr);
    let out = tokio::task::spawn_blocking(move || hcgw(&["healthcheck", &url]))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    gw.shutdown().await;
}

#[test]
fn healthcheck_fails_on_a_closed_port_a_silent_server_and_a_bad_url() {
    // A port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}/healthz", closed.local_addr().unwrap());
    drop(closed);
    let out = hcgw(&["healthcheck", &closed_url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));

    // A server that accepts and never answers: the timeout decides.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/healthz", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let out = hcgw(&["healthcheck", "--timeout-ms", "300", &silent_url]);
    assert!(!out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(silent);

    // A server answering 503.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_url = format!("http://{}/healthz", busy.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = busy.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        s.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    });
    let out = hcgw(&["healthcheck", &busy_url]);
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("503"), "{stderr}");

    for bad in [
        "https://127.0.0.1:9090/healthz",
        "not a url",
        "http:///healthz",
    ] {
        let out = hcgw(&["healthcheck", bad]);
        assert!(!out.status.success(), "{bad} accepted");
    }
}

#[test]
fn completions_are_generated_for_the_common_shells() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = hcgw(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = stdout(&out);
        for word in ["check-config", "healthcheck", "serve", "simulate"] {
            assert!(text.contains(word), "{shell} completion lacks {word}");
        }
    }
    assert!(!hcgw(&["completions", "cmd.exe"]).status.success());
}

#[test]
fn the_man_page_is_roff_describing_the_subcommands() {
    let out = hcgw(&["man"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.starts_with(".ie") || text.contains(".TH hcgw"),
        "{text}"
    );
    assert!(text.contains(".TH hcgw"), "{text}");
    for word in ["check\\-config", "healthcheck", "completions"] {
        assert!(text.contains(word), "man page lacks {word}");
    }
}

#[test]
fn version_is_the_crate_version() {
    let out = hcgw(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("hcgw {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `log_format = "pretty"` with standard error and output redirected to a file (no
/// terminal): the lines are there, without a single ANSI escape.
#[tokio::test]
async fn pretty_logs_redirected_to_a_file_carry_no_colour_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&TlsPaths::standard(), &dir.path().join("audit"), "").replace(
        "log_level = \"warn\"",
        "log_level = \"info\"\nlog_format = \"pretty\"",
    );
    assert!(text.contains("log_format = \"pretty\""));
    let config = dir.path().join("hcgw.toml");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("hcgw.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hcgw"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    eventually(20, "the gateway logs that it listens", async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("gateway listening"))
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let bytes = std::fs::read(&log).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("INFO"), "{text}");
    assert!(
        !bytes.contains(&0x1b),
        "ANSI escapes in a redirected log: {text:?}"
    );
}
