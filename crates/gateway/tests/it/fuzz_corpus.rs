//! The fuzz corpus, replayed on stable as an ordinary test: every file of
//! `fuzz/corpus/<target>/` goes through the same entry function its fuzz
//! target calls (`clawgate::fuzz_entry`), so a crash once found, and the
//! properties the targets check, stay checked on every run. CI never fuzzes;
//! `scripts/fuzz` does (docs/reliability.md, "Fuzzing").

use std::path::{Path, PathBuf};

use clawgate::fuzz_entry::TARGETS;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}; the corpus is missing", dir.display()));
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("a corpus entry").path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_and_every_corpus_a_target() {
    let root = corpus_root();
    for (name, _) in TARGETS {
        let dir = root.join(name);
        assert!(!files(&dir).is_empty(), "{} is empty: every fuzz target keeps a corpus", dir.display());
    }
    for entry in std::fs::read_dir(&root).expect("fuzz/corpus exists") {
        let name = entry.expect("a corpus directory").file_name();
        let name = name.to_string_lossy();
        assert!(TARGETS.iter().any(|(t, _)| *t == name), "fuzz/corpus/{name} has no target in clawgate::fuzz_entry");
    }
}

#[test]
fn the_corpus_replays_without_a_failure() {
    let root = corpus_root();
    let mut replayed = 0;
    for (name, entry) in TARGETS {
        for file in files(&root.join(name)) {
            let data = std::fs::read(&file).expect("a corpus file reads");
            let outcome = std::panic::catch_unwind(|| entry(&data));
            assert!(outcome.is_ok(), "fuzz target {name} fails on {}", file.display());
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len(), "only {replayed} corpus files");
}

#[test]
fn the_fuzz_targets_are_the_entry_functions() {
    // Each target file calls the entry of its own name, so the replay above
    // runs what the fuzzer ran.
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (name, _) in TARGETS {
        let path = targets.join(format!("{name}.rs"));
        let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            source.contains(&format!("clawgate::fuzz_entry::{name}(data)")),
            "{} calls another entry",
            path.display()
        );
    }
}
