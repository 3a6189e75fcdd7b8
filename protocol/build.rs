//! Compiles `proto/` with protox (pure Rust; no `protoc` needed) and prost-build. With the `json`
//! feature, pbjson-build also generates the canonical proto3 JSON mapping (serde
//! implementations) of the same descriptors, included beside the prost types by `json.rs`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = "../proto";
    let file = "../proto/parley/v1/parley.proto";
    println!("cargo:rerun-if-changed={file}");
    let descriptors = protox::compile([file], [proto_root])?;
    if std::env::var_os("CARGO_FEATURE_JSON").is_some() {
        let mut json = pbjson_build::Builder::new();
        for file in &descriptors.file {
            json.register_file_descriptor(file.clone());
        }
        // Writes `parley.v1.serde.rs` to OUT_DIR.
        json.build(&[".parley"])?;
    }
    prost_build::Config::new()
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
