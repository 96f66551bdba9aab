//! Link options for the binary people ship (release profile, Linux x86-64,
//! whose default linker is Rust's own LLD). Measured on the dev binary
//! (stripped, 158.0 MB): packed relative relocations 149.0 MB, identical
//! code folding on top 141.0 MB. Dev builds keep the plain, quicker link.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let target = std::env::var("TARGET").unwrap_or_default();
    if release && target == "x86_64-unknown-linux-gnu" {
        // Relative relocations as a bitmap (DT_RELR) instead of 24-byte
        // entries: 9 MB. Needs glibc >= 2.36 at run time (Debian 12, the
        // Dockerfile's distroless image).
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        // Fold functions whose machine code is identical (the same generic
        // instantiated in many crates, drop glue): 8 MB. Rust promises no
        // distinct addresses for distinct functions, so folding is sound.
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    }
}
