//! The `contactbridge` command: serve, import, lookup, manage users.

// PENDING-FILES: `mod cli;` is enabled when contactbridge-files lands.

fn main() -> std::process::ExitCode {
    eprintln!("the command line is being assembled");
    std::process::ExitCode::FAILURE
}
