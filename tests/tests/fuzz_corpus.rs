//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and the saved crash inputs
//! (`fuzz/regressions/<target>/`) through the same checks the fuzz targets run, so every input
//! the fuzzer ever found interesting is a regression test on stable Rust.

use std::path::{Path, PathBuf};

use tower_edge::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_and_a_fuzz_target() {
    for (name, _) in TARGETS {
        let corpus = fuzz_dir().join("corpus").join(name);
        assert!(
            !inputs(&corpus).is_empty(),
            "no corpus for fuzz target {name} in {}",
            corpus.display()
        );
        let target = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(target.is_file(), "missing {}", target.display());
    }
}

#[test]
fn corpus_and_regressions_replay_without_a_failed_check() {
    let mut replayed = 0;
    for (name, check) in TARGETS {
        for kind in ["corpus", "regressions"] {
            for file in inputs(&fuzz_dir().join(kind).join(name)) {
                let data = std::fs::read(&file).expect("readable input");
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(
                    outcome.is_ok(),
                    "fuzz target {name} fails on {}",
                    file.display()
                );
                replayed += 1;
            }
        }
    }
    assert!(replayed > 0);
    eprintln!("replayed {replayed} fuzz inputs");
}
