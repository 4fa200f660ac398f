//! Records the build's git commit and profile for `roomcast --version`, `/version` and
//! `roomcast_build_info`.
//!
//! The commit comes from `ROOMCAST_GIT_COMMIT` when set (image builds without `.git`),
//! else from git when the sources are a checkout, else it is `unknown`: a build from a
//! source tarball works the same, it only cannot name its commit.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=ROOMCAST_GIT_COMMIT");
    let commit = match std::env::var("ROOMCAST_GIT_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_owned(),
        _ => {
            // Rebuilt when HEAD moves: the HEAD file, and the branch it points to.
            for path in ["HEAD", "packed-refs"] {
                if let Some(file) = git(&["rev-parse", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={file}");
                }
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
                && let Some(file) = git(&["rev-parse", "--git-path", &branch])
            {
                println!("cargo:rerun-if-changed={file}");
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=ROOMCAST_GIT_COMMIT={commit}");
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=ROOMCAST_BUILD_PROFILE={profile}");
}
