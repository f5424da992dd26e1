//! What a case is: its `test.toml`, read into [`Case`] and [`Expect`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// What a run must show.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exit status (default 0 unless `signal` is given).
    pub exit: Option<i32>,
    /// Name of the signal that must end the process (e.g. "SIGSYS").
    pub signal: Option<String>,
    /// Exact stdout.
    pub stdout: Option<String>,
    #[serde(default)]
    pub stdout_contains: Vec<String>,
    #[serde(default)]
    pub stdout_lacks: Vec<String>,
    #[serde(default)]
    pub stderr_contains: Vec<String>,
    /// Paths (relative to the work directory) that must exist afterwards.
    #[serde(default)]
    pub exists: Vec<String>,
    /// Paths that must not exist afterwards.
    #[serde(default)]
    pub absent: Vec<String>,
}

/// What a case needs from the machine it runs on besides its host: runners that cannot
/// provide it (the NixOS VM tests, the QEMU guest) skip the case and say why. `cargo xtask
/// test` provides everything and runs every case.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Needs {
    /// Programs found on the case's PATH (`/usr/local/bin:/usr/bin:/bin`).
    #[serde(default)]
    pub programs: Vec<String>,
    /// Files that must all exist (absolute paths).
    #[serde(default)]
    pub files: Vec<String>,
    /// Files of which at least one must exist (one per architecture or distribution).
    #[serde(default)]
    pub any_file: Vec<String>,
    /// The landlock ABI the case's expectations rely on (1: filesystem, 4: TCP, 6: scopes).
    pub landlock_abi: Option<u32>,
    /// The oldest kernel (`MAJOR.MINOR`) whose behaviour the case relies on.
    pub kernel: Option<String>,
    /// The case relies on timing that only a machine running at its own speed gives (not QEMU's
    /// software emulation, where everything besides the script is ten times slower too).
    #[serde(default)]
    pub no_emulation: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// One sentence: what this case proves.
    pub about: String,
    /// Host options before the script.
    #[serde(default)]
    pub options: Vec<String>,
    /// The script, relative to the case folder.
    #[serde(default = "default_script")]
    pub script: String,
    #[serde(default)]
    pub script_args: Vec<String>,
    pub stdin: Option<String>,
    /// Extra environment of the host process (on top of PATH and HOME).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files created before the run, relative to the work directory.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Octal modes applied to created files after they are written (e.g. "000").
    #[serde(default)]
    pub file_modes: BTreeMap<String, String>,
    /// Send stdout to a regular file in the work directory (as `> file` does) instead of a pipe.
    #[serde(default)]
    pub stdout_to_file: bool,
    /// Seconds before the run is killed and the case fails.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Run only as these users: "root", "user" (default both).
    pub users: Option<Vec<String>>,
    #[serde(flatten)]
    pub expect: Expect,
    /// The same script under the bare interpreter, showing the attack works unsandboxed.
    pub control: Option<Expect>,
    /// The same run again with `--kill-on-deny`: what the sandbox shows when the first refused
    /// call ends it (typically death by SIGSYS and the refusal line).
    pub kill_on_deny: Option<Expect>,
    /// What the case needs from the machine (see [`Needs`]).
    #[serde(default)]
    pub needs: Needs,
    /// The case must run, and pass, on a kernel without landlock too (the host then runs with
    /// `--allow-degraded`): what seccomp, the environment scrub and the rlimits stop alone. A
    /// runner on such a kernel fails the suite when it is skipped.
    #[serde(default)]
    pub holds_without_landlock: bool,
    /// A bash script of the case, run bare instead of the host: it runs the script itself as
    /// `$HOST SCRIPT ...` (the host with `options`, or in the control run the bare interpreter)
    /// and observes what a caller would (its own stdin, its files, processes left behind).
    pub caller: Option<String>,
    /// Run with a fresh pseudo-terminal as stdin, stdout and stderr (stderr is then part of stdout).
    #[serde(default)]
    pub terminal: bool,
    /// On a terminal: text typed once the output so far contains `after` (in order).
    #[serde(default)]
    pub send: Vec<Typed>,
    /// On a terminal: keys already typed when the run starts (queued on the terminal before
    /// the command is spawned, as a user types ahead of a slow prompt).
    #[serde(default)]
    pub typed_ahead: String,
}

/// Text typed on the terminal of a case once its output shows `after`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Typed {
    pub after: String,
    pub text: String,
}

impl Expect {
    /// Replaces each `(name, value)` of `vars` in every expected text.
    fn substitute<N: AsRef<str>, V: AsRef<str>>(&mut self, vars: &[(N, V)]) {
        let replace = |text: &mut String| {
            for (name, value) in vars {
                *text = text.replace(name.as_ref(), value.as_ref());
            }
        };
        self.stdout.iter_mut().for_each(replace);
        for list in [&mut self.stdout_contains, &mut self.stdout_lacks, &mut self.stderr_contains] {
            list.iter_mut().for_each(replace);
        }
    }
}

impl Case {
    /// Reads `test.toml` of `case_dir`, with `vars` substituted in its expectations.
    pub fn load<N: AsRef<str>, V: AsRef<str>>(case_dir: &Path, vars: &[(N, V)]) -> Result<Case, String> {
        let path = case_dir.join("test.toml");
        let text = std::fs::read_to_string(&path).map_err(|error| format!("{}: {error}", path.display()))?;
        let mut case: Case = toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        case.expect.substitute(vars);
        if let Some(control) = case.control.as_mut() {
            control.substitute(vars);
        }
        if let Some(kill_on_deny) = case.kill_on_deny.as_mut() {
            kill_on_deny.substitute(vars);
        }
        if case.holds_without_landlock && case.needs.landlock_abi.is_some() {
            return Err(format!("{}: a case that holds without landlock cannot need a landlock ABI", path.display()));
        }
        Ok(case)
    }
}

fn default_script() -> String {
    "main".to_string()
}

fn default_timeout() -> u64 {
    60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_and_build_values_are_read() {
        let dir = std::env::temp_dir().join(format!("h-testkit-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("test.toml"),
            "about = \"x\"\nstdout_contains = [\"$LIBPYTHON\"]\n[needs]\nprograms = [\"ls\"]\nlandlock_abi = 6\n",
        )
        .unwrap();
        let case = Case::load(&dir, &[("$LIBPYTHON", "libpython3.13.so.1.0")]).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(case.expect.stdout_contains, ["libpython3.13.so.1.0"]);
        assert_eq!(case.needs.programs, ["ls"]);
        assert_eq!(case.needs.landlock_abi, Some(6));
    }
}
