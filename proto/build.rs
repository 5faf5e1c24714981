fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        // Decode failures are the caller's bad input (src/codec.rs).
        .codec_path("crate::codec::Codec")
        .compile_protos(&["proto/spandb.proto", "proto/storage.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
