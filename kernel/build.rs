//! Link the kernel image as a freestanding static ELF at its own layout (DESIGN.md §4):
//! the host target's precompiled `core`/`alloc` are used, with our linker script and no
//! C runtime. Only the image's binary target gets these arguments.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for arg in [
        format!("-T{dir}/linker.ld"),
        "-nostartfiles".into(),
        "-nostdlib".into(),
        "-static".into(),
        "-no-pie".into(),
        "-Wl,--build-id=none".into(),
        "-Wl,-z,max-page-size=4096".into(),
        "-Wl,--no-eh-frame-hdr".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
