//! Records the commit the binary is built from (`clawgate --version`):
//! `git rev-parse --short HEAD` when git and a repository are there,
//! `$CLAWGATE_COMMIT` when set (packagers building from a tarball), else
//! "unknown". Never fails the build.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(env_dir()).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn env_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLAWGATE_COMMIT");
    let commit = match std::env::var("CLAWGATE_COMMIT").ok().filter(|c| !c.trim().is_empty()) {
        Some(c) => c.trim().to_owned(),
        None => git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
    };
    // Rebuild when HEAD moves: HEAD itself, the branch it points at, packed refs.
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let (Some(common), Some(branch)) =
            (git(&["rev-parse", "--git-common-dir"]), git(&["symbolic-ref", "-q", "HEAD"]))
        {
            let common = if Path::new(&common).is_absolute() { common } else { format!("{}/{common}", env_dir()) };
            for path in [format!("{common}/{branch}"), format!("{common}/packed-refs")] {
                if Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
        }
    }
    println!("cargo:rustc-env=CLAWGATE_COMMIT={commit}");
}
