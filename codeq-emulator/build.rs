//! Compiles `../proto/*.proto` (the codeQ wire contract, contract §2) into Rust with protox, so no
//! system `protoc` is needed. Both client and server code are generated: the emulator serves
//! the streams and its tests (and the main crate's tests) drive them with real clients.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("..").join("proto");
    let files = [
        proto_dir.join("workerpb.proto"),
        proto_dir.join("producerpb.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let fds = protox::compile(&files, [&proto_dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
