fn main() -> std::process::ExitCode {
    clawgate::cli::main()
}
