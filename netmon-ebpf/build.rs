//! Linking the kernel crate needs the `bpf-linker` binary. Rebuild when it changes, and say how
//! to get it when it is missing.
fn main() {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => {
            println!("cargo:warning=bpf-linker not found on PATH: run `cargo xtask setup`");
        }
    }
}
