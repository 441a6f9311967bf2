//! Compiles the gRPC schemas in `schemas/` with protox (no system `protoc`
//! needed) into Rust code for tonic, and writes the file descriptor set that
//! server reflection serves.

use prost::Message as _;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "schemas/contactbridge/v1/types.proto",
    "schemas/contactbridge/v1/call_handling.proto",
    "schemas/contactbridge/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(PROTOS, ["schemas"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("contactbridge_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
