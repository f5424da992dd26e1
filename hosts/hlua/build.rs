//! Tells the case harness which call starts a process under the C library hlua is built with:
//! musl's `posix_spawn` makes the pipe for the child's exec error first (`pipe2`), glibc's clones
//! first (`clone3`). `hlua/attacks/exec` expects hlua to name that call when it refuses it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let first = match std::env::var("CARGO_CFG_TARGET_ENV").as_deref() {
        Ok("musl") => "pipe2",
        _ => "clone3",
    };
    println!("cargo:rustc-env=H_SPAWN_FIRST_CALL={first}");
}
