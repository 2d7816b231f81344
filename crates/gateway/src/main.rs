//! The `clawgate` command. The command line lives here, in the binary, so
//! that embedding the library (`clawgate::serve`) pulls in neither the CLI
//! nor clap; the `cli` feature (on by default) brings clap for this binary.

mod cli;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
