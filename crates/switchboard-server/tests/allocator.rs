//! The `switchboard` binary runs with the jemalloc settings main.rs compiles
//! in (`MALLOC_CONF`). jemalloc reads them itself at start and only prints a
//! warning for a pair it does not take, leaving its default in place; this
//! reads back what it runs with, from its own statistics printed at exit.
#![cfg(all(feature = "jemalloc", not(target_env = "msvc")))]

use std::process::Command;

#[test]
fn the_binary_runs_jemalloc_with_the_settings_compiled_in() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--version")
        // Added to the compiled-in settings: the statistics as JSON at exit,
        // without the per-arena parts.
        .env(
            "_RJEM_MALLOC_CONF",
            "stats_print:true,stats_print_opts:Jmdablxe",
        )
        .output()
        .expect("run switchboard --version");
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).expect("UTF-8 statistics");
    assert!(
        !stderr.contains("<jemalloc>"),
        "jemalloc refused a setting: {stderr}"
    );
    let stats: serde_json::Value = serde_json::from_str(&stderr).expect("JSON statistics");
    let opt = &stats["jemalloc"]["opt"];
    assert_eq!(opt["background_thread"], true);
    assert_eq!(opt["dirty_decay_ms"], 1000);
    assert_eq!(opt["muzzy_decay_ms"], 0);
    assert_eq!(opt["tcache_nslots_small_max"], 32);
    assert_eq!(opt["tcache_nslots_large"], 4);
    let slab_of = |size: u64| {
        stats["jemalloc"]["arenas"]["bin"]
            .as_array()
            .expect("size classes")
            .iter()
            .find(|bin| bin["size"] == size)
            .unwrap_or_else(|| panic!("no {size}-byte size class"))["slab_size"]
            .as_u64()
            .expect("slab size")
    };
    // Four pages for every size up to 4 KiB (where four pages hold at
    // most jemalloc's 512 blocks: 16-byte blocks get two).
    assert_eq!(slab_of(16), 8192);
    for size in [64, 256, 768, 4096] {
        assert_eq!(slab_of(size), 16384, "{size}-byte blocks");
    }
    assert_eq!(slab_of(8192), 65536, "8 KiB blocks, eight to a slab");
}
