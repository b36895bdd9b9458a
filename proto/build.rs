//! Compiles `mediation/**/*.proto` without protoc: protox parses the files
//! into a `FileDescriptorSet`, which is saved for server reflection and fed
//! to tonic-prost-build to generate the Rust code.

use std::path::PathBuf;
use std::{env, fs, process};

use protox::prost::Message as _;

/// The proto directory, relative to the crate (= the include root).
const PROTO_DIR: &str = "mediation";

/// The files to compile, relative to the include root.
const PROTO_FILES: &[&str] = &[
    "mediation/v1/common.proto",
    "mediation/v1/dispute.proto",
    "mediation/v1/petition.proto",
    "mediation/v1/event.proto",
    "mediation/v1/sla.proto",
    "mediation/v1/privacy.proto",
];

fn main() {
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    if let Err(message) = run() {
        eprintln!("error: {message}");
        process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);

    // The include root is the crate directory, so that file paths (and the
    // names in the descriptor set) are `mediation/v1/...`, matching the package.
    let fds = protox::Compiler::new(["."])
        .and_then(|mut compiler| {
            compiler
                .include_source_info(true)
                .include_imports(true)
                .open_files(PROTO_FILES)?;
            Ok(compiler.file_descriptor_set())
        })
        // protox's Debug output carries `file:line:column: message`.
        .map_err(|e| format!("failed to compile the .proto files:\n{e:?}"))?;

    let descriptor_path = out_dir.join("mediation_descriptor.bin");
    fs::write(&descriptor_path, fds.encode_to_vec())
        .map_err(|e| format!("failed to write {}: {e}", descriptor_path.display()))?;

    // compile_fds skips protoc entirely: code generation works from `fds`.
    tonic_prost_build::configure()
        .compile_fds(fds)
        .map_err(|e| format!("failed to generate code from the descriptor set: {e}"))?;

    Ok(())
}
