//! `modelgate demo` as a new operator runs it: the database path it prints
//! works with the CLI while it runs, and SIGTERM removes it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_demo_database_can_be_tried_and_is_removed_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .arg("demo")
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let db = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the demo prints the CLI command for its database");
        if let Some(rest) = line.strip_prefix("modelgate --db ") {
            break rest.split(' ').next().unwrap().to_owned();
        }
    };
    assert!(std::path::Path::new(&db).is_file(), "{db}");
    let report = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .args(["--db", &db, "report", "--org", "acme"])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(String::from_utf8_lossy(&report.stdout).contains("acme"));

    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!std::path::Path::new(&db).exists(), "{db} left behind");
}
