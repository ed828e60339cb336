//! The `hcgw` command.

fn main() -> std::process::ExitCode {
    hcgw::cli::main()
}
