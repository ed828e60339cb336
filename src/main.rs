//! The `hcgw` command.

/// mimalloc: the gateway allocates many small, short-lived objects per request on several
/// threads, where glibc's allocator showed up in profiles with arena-lock contention
/// (`scripts/bench.sh`, README "Performance").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hcgw::cli::main()
}
