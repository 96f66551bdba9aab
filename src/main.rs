/// jemalloc instead of glibc's malloc: see Cargo.toml and docs/decisions.md.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    cip::cli::main()
}
