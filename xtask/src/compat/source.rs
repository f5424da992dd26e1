//! Bringing the suites into `target/compat/` by their ordinary channels: Debian source packages
//! through apt (with a private source list, so the machine's apt configuration is not touched),
//! a release tarball, or a local git clone of the project at a pinned tag.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The Debian releases whose source packages are looked at: the machine's own (bash 5.2.15 and
/// CPython 3.11 match it) and the next one, whose nodejs is the 20.x line.
const RELEASES: &[&str] = &["bookworm", "trixie"];

/// The archive and security mirrors this machine's apt already uses (read from its sources, so
/// that no mirror is named here): (archive URI, security URI).
fn debian_mirrors() -> Result<(String, Option<String>)> {
    let mut texts = vec![std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".sources") || name.ends_with(".list") {
                texts.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
    }
    let mut archive = None;
    let mut security = None;
    for text in &texts {
        for line in text.lines() {
            let uri = if let Some(rest) = line.trim().strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if line.trim_start().starts_with("deb ") {
                line.split_whitespace().find(|word| word.contains("://"))
            } else {
                None
            };
            let Some(uri) = uri else { continue };
            let uri = uri.trim_end_matches('/').to_string();
            if uri.ends_with("/debian-security") {
                security.get_or_insert(uri);
            } else if uri.ends_with("/debian") {
                archive.get_or_insert(uri);
            }
        }
    }
    match archive {
        Some(archive) => Ok((archive, security)),
        None => bail!("no Debian archive in /etc/apt/sources.list{{,.d}}: cannot fetch source packages"),
    }
}

/// apt-get and apt-cache with a private source list and state under `target/compat/apt`.
pub struct AptSource {
    dir: PathBuf,
}

impl AptSource {
    /// Writes the private deb-src list and updates its indexes (once per xtask run).
    pub fn prepare(cache: &Path) -> Result<AptSource> {
        let dir = cache.join("apt");
        for sub in ["lists/partial", "cache/archives/partial", "parts"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let (archive, security) = debian_mirrors()?;
        let mut list = String::new();
        for release in RELEASES {
            list.push_str(&format!("deb-src {archive} {release} main\n"));
            list.push_str(&format!("deb-src {archive} {release}-updates main\n"));
            if let Some(security) = &security {
                list.push_str(&format!("deb-src {security} {release}-security main\n"));
            }
        }
        std::fs::write(dir.join("sources.list"), list)?;
        let apt = AptSource { dir };
        let status = apt.command("apt-get").args(["update", "-qq"]).status().context("running apt-get update")?;
        if !status.success() {
            bail!("apt-get update of the source indexes failed: {status}");
        }
        Ok(apt)
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        let option = |name: &str, value: &Path| format!("{name}={}", value.display());
        command
            .arg("-o")
            .arg(option("Dir::Etc::SourceList", &self.dir.join("sources.list")))
            .arg("-o")
            .arg(option("Dir::Etc::SourceParts", &self.dir.join("parts")))
            .arg("-o")
            .arg(option("Dir::State::Lists", &self.dir.join("lists")))
            .arg("-o")
            .arg(option("Dir::Cache", &self.dir.join("cache")))
            .args(["-o", "APT::Sandbox::User=root"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        command
    }

    /// Every version of a source package the indexes know.
    pub fn versions(&self, package: &str) -> Result<Vec<String>> {
        let out = self.command("apt-cache").args(["showsrc", package]).output().context("running apt-cache showsrc")?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().filter_map(|line| line.strip_prefix("Version: ")).map(|v| v.trim().to_string()).collect())
    }

    /// `apt-get source PACKAGE=VERSION` in `into` (`--download-only` leaves the tarballs unpacked).
    /// Returns true when it succeeded; a partial download (some files of the version missing from
    /// the mirror) still leaves what was fetched.
    pub fn source(&self, package: &str, version: &str, into: &Path, download_only: bool) -> Result<bool> {
        std::fs::create_dir_all(into)?;
        let mut command = self.command("apt-get");
        command.current_dir(into).args(["source", "-qq"]);
        if download_only {
            command.arg("--download-only");
        }
        let status = command.arg(format!("{package}={version}")).status().context("running apt-get source")?;
        Ok(status.success())
    }
}

/// Downloads `url` to `file` with curl (a short time limit: no answer means not reachable).
pub fn download(url: &str, file: &Path) -> bool {
    Command::new("curl")
        .args(["-fsSL", "--max-time", "60", "--connect-timeout", "10", "-o"])
        .arg(file)
        .arg(url)
        .status()
        .is_ok_and(|status| status.success())
}

/// Unpacks `paths` (all when empty) of git tree `tag` of the repository at `git_dir` into `into`.
pub fn git_archive(git_dir: &Path, tag: &str, paths: &[&str], into: &Path) -> Result<()> {
    std::fs::create_dir_all(into)?;
    let archive = into.join(".archive.tar");
    let status = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["archive", "--format=tar", "-o"])
        .arg(&archive)
        .arg(tag)
        .args(paths)
        .status()
        .context("running git archive")?;
    if !status.success() {
        bail!("git archive {tag} of {} failed: {status}", git_dir.display());
    }
    untar(&archive, into, &[])?;
    std::fs::remove_file(&archive)?;
    Ok(())
}

/// Unpacks a tarball (any compression tar knows) into `into`; `members` are wildcards of the
/// members to extract (all when empty).
pub fn untar(tarball: &Path, into: &Path, members: &[&str]) -> Result<()> {
    std::fs::create_dir_all(into)?;
    let mut command = Command::new("tar");
    command.arg("-xf").arg(tarball).arg("-C").arg(into);
    if !members.is_empty() {
        command.arg("--wildcards").args(members);
    }
    let status = command.status().context("running tar")?;
    if !status.success() {
        bail!("unpacking {} failed: {status}", tarball.display());
    }
    Ok(())
}

/// The first existing git directory among `$VARIABLE` and the known local clones (this
/// workplace keeps public GitHub snapshots under /work/.mirror/OWNER+NAME/repo).
pub fn local_clone(variable: &str, mirrors: &[&str]) -> Option<PathBuf> {
    let from_env = std::env::var_os(variable).map(PathBuf::from);
    from_env
        .into_iter()
        .chain(mirrors.iter().map(PathBuf::from))
        .find(|dir| dir.join("HEAD").exists() || dir.join(".git").exists())
        .map(|dir| if dir.join(".git").is_dir() { dir.join(".git") } else { dir })
}

/// The upstream part of a Debian version: `5.2.15-2+b8` → `5.2.15`, `20.19.2+dfsg-1` → `20.19.2`.
pub fn upstream(debian_version: &str) -> &str {
    let without_epoch = debian_version.split_once(':').map_or(debian_version, |(_, rest)| rest);
    let without_revision = without_epoch.rsplit_once('-').map_or(without_epoch, |(upstream, _)| upstream);
    without_revision.split(['+', '~']).next().unwrap_or(without_revision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_versions() {
        assert_eq!(upstream("5.2.15-2+b8"), "5.2.15");
        assert_eq!(upstream("20.19.2+dfsg-1+deb13u3"), "20.19.2");
        assert_eq!(upstream("1:2.3-4"), "2.3");
    }
}
