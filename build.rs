//! Build script: the git commit `modelgate_build_info` reports.
//!
//! `MODELGATE_GIT_COMMIT` at build time wins (the Docker build has no
//! `.git`: it passes its `REVISION` argument); otherwise `git rev-parse
//! --short HEAD`; otherwise `unknown`, so a build never fails for want of git.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MODELGATE_GIT_COMMIT");
    let commit = std::env::var("MODELGATE_GIT_COMMIT")
        .ok()
        .and_then(|c| label_safe(&c))
        .or_else(|| {
            let head = git(&["rev-parse", "--short", "HEAD"])?;
            watch_git_head();
            label_safe(&head)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MODELGATE_GIT_COMMIT={commit}");
}

/// A commit id or tag as a metric label: trimmed, at most 40 characters of
/// `[0-9A-Za-z._-]`; anything else is refused.
fn label_safe(raw: &str) -> Option<String> {
    let s = raw.trim();
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then(|| s.to_owned())
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}

/// Rebuild when HEAD moves: HEAD itself (a checkout), the branch it points
/// at (a commit), and packed-refs. Only existing files are named (cargo
/// would rerun on every build for a missing one); `--git-path` resolves
/// worktrees' shared ref store.
fn watch_git_head() {
    let mut paths = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        paths.push(branch.trim().to_owned());
    }
    for p in paths {
        if let Some(path) = git(&["rev-parse", "--git-path", &p]) {
            let path = std::path::PathBuf::from(path.trim());
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
