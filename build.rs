//! Compiles the codeQ protos (`proto/*.proto`, contract §2) into the supervisor's gRPC **client**
//! code with protox, so no system `protoc` is needed. The server side lives only in the
//! `codeq-emulator` crate, which is never part of a release.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
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
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
