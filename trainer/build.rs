//! Link libtorch so that the `trainer` binary runs without `LD_LIBRARY_PATH` and sees CUDA.
//!
//! torch-sys publishes the libtorch library directory as `DEP_TCH_LIBTORCH_LIB`; we bake it
//! into the binary's rpath. `--no-as-needed -ltorch` keeps `libtorch.so` (which pulls in
//! `libtorch_cuda.so`) in the dynamic section even though no Rust symbol references it
//! directly; without it the linker drops it and `Cuda::is_available()` is false on GPU
//! machines (tch-rs issues #980, #907). Same as tch-rs's own build.rs.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" || os == "windows" {
        if let Some(lib_dir) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
            println!(
                "cargo:rustc-link-arg=-Wl,-rpath={}",
                lib_dir.to_string_lossy()
            );
        }
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch");
    }
}
