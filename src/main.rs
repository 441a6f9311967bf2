//! The `contactbridge` command: serve, import, lookup, manage users.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
