//! Every input in the committed fuzz corpora (`fuzz/corpus/<target>/`),
//! replayed through its target as an ordinary test: what a fuzzer once found
//! stays fixed, and CI spends no time fuzzing. `docs/fuzzing.md` says how to
//! fuzz for real.

include!("../fuzz/targets.rs");

fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus for {target}");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{target}: {} fails", f.display());
        }
    }
    eprintln!("{target}: {} inputs replayed", files.len());
}

#[test]
fn datagrams() {
    replay("datagrams", targets::datagrams);
}

#[test]
fn sdp_offer() {
    replay("sdp_offer", targets::sdp_offer);
}

#[test]
fn sdpfrag() {
    replay("sdpfrag", targets::sdpfrag);
}

#[test]
fn codec_payloads() {
    replay("codec_payloads", targets::codec_payloads);
}

#[test]
fn audio_levels() {
    replay("audio_levels", targets::audio_levels);
}

#[test]
fn json_bodies() {
    replay("json_bodies", targets::json_bodies);
}
