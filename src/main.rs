fn main() -> std::process::ExitCode {
    cip::cli::main()
}
