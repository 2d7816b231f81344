//! The `clawgate` command. The command line lives here, in the binary, so
//! that embedding the library (`clawgate::serve`) pulls in neither the CLI
//! nor clap; the `cli` feature (on by default) brings clap for this binary.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
