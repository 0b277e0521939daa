//! Embeds the chat page into the binary (see `src/endpoints/page.rs`): every
//! file of `assets/`, and the browser client libraries that `web/` installs
//! from npm by lockfile (`npm ci --prefix crates/switchboard-server/web`),
//! served under `vendor/`. A library that is not installed is left out, and
//! the page then hides the protocol that needs it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// (file in `web/node_modules`, name under `/assets/vendor/`).
const VENDOR: &[(&str, &str)] = &[
    ("socket.io-client/dist/socket.io.min.js", "socket.io.min.js"),
    ("sockjs-client/dist/sockjs.min.js", "sockjs.min.js"),
    (
        "@stomp/stompjs/bundles/stomp.umd.min.js",
        "stomp.umd.min.js",
    ),
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("assets");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
                .collect()
        })
        .unwrap_or_default();
    let modules = root.join("web/node_modules");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("web/package-lock.json").display()
    );
    for (file, name) in VENDOR {
        let path = modules.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_file() {
            entries.push((format!("vendor/{name}"), path));
        } else {
            println!("cargo:warning=chat page: {file} is not installed (npm ci --prefix crates/switchboard-server/web); leaving it out");
        }
    }
    entries.sort();
    let mut code = String::from("/// (file name, contents) of every embedded asset.\npub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (name, path) in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        let _ = writeln!(
            code,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("assets.rs");
    std::fs::write(out, code).unwrap();
}
