//! The configuration reference in docs/configuration.md stays true: its TOML
//! block loads, and each setting it shows equals the built-in default.

use switchboard_server::Config;

fn reference_block() -> String {
    let doc = include_str!("../../../docs/configuration.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("the end of the block");
    doc[start..end].to_owned()
}

#[test]
fn the_documented_configuration_loads_and_shows_the_defaults() {
    let dir = std::env::temp_dir().join(format!("switchboard-docs-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("reference.toml");
    std::fs::write(&file, reference_block()).unwrap();
    let loaded = Config::load(Some(&file), std::iter::empty()).unwrap_or_else(|e| panic!("{e}"));
    let defaults = Config::load(None, std::iter::empty()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    // Debug output covers every field (secrets are absent from both).
    assert_eq!(format!("{loaded:?}"), format!("{defaults:?}"));
}
