//! The command line shared by every host (see SPEC.md):
//! `HOST [OPTIONS] [--] SCRIPT [ARGS...]`. Options stop at the script; everything after it
//! belongs to the script.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use h_sandbox::{Limit, Resource};

/// What the user asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Help,
    Version,
    Run(Box<Options>),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub script: PathBuf,
    pub script_args: Vec<OsString>,
    pub allow_script_dir: bool,
    pub allow_tmp: bool,
    pub allow_localtime: bool,
    pub allow_read: Vec<PathBuf>,
    pub allow_write: Vec<PathBuf>,
    /// `-r` values in command-line order (a later one for the same resource wins).
    pub rlimits: Vec<(Resource, Limit)>,
    pub inherit_rlimits: bool,
    /// `--env NAME` (value `None`: taken from the inherited environment) or `--env NAME=VALUE`.
    pub env: Vec<(OsString, Option<OsString>)>,
    pub allow_degraded: bool,
    /// `--print-policy` or `--print-policy=json`.
    pub print_policy: Option<PolicyFormat>,
    /// `-k`: end the sandbox at the first refused call instead of failing the call.
    pub kill_on_deny: bool,
    /// `--tasks N` (or `-r nproc=N`, the same budget): processes and threads of the sandbox.
    pub tasks: Option<Limit>,
    /// `-m SIZE`: the memory budget.
    pub memory: Option<Limit>,
    /// `--allow-exec PROGRAM` (repeatable): programs the script may run.
    pub allow_exec: Vec<OsString>,
    /// `--allow-connect HOST:PORT` (repeatable): TCP endpoints the script may connect to.
    pub allow_connect: Vec<crate::endpoints::Endpoint>,
    /// `--learn`: note what the sandbox refuses and print the options that grant it.
    pub learn: bool,
}

/// How `--print-policy` prints the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyFormat {
    Text,
    Json,
}

/// A command line that cannot be run; the message is the whole error line after `HOST: `.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

fn text(value: &OsStr) -> String {
    value.to_string_lossy().into_owned()
}

fn parse_rlimit(value: &OsStr) -> Result<(Resource, Limit), UsageError> {
    let value = value.to_str().ok_or_else(|| UsageError(format!("unable to parse rlimit: {}", text(value))))?;
    let (name, limit) = value.split_once('=').ok_or_else(|| {
        UsageError(format!("unable to parse rlimit: {value} (expected RLIMIT=VALUE, e.g. nofile=64)"))
    })?;
    let resource = Resource::from_name(name).ok_or_else(|| UsageError(format!("unknown rlimit: {name}")))?;
    let limit = Limit::parse(limit).ok_or_else(|| {
        UsageError(format!("unable to parse rlimit value for {name}: {limit} (a number with optional K/M/G, or inf)"))
    })?;
    Ok((resource, limit))
}

fn parse_env(value: &OsStr) -> Result<(OsString, Option<OsString>), UsageError> {
    let bytes = value.as_bytes();
    let (name, assigned) = match bytes.iter().position(|&byte| byte == b'=') {
        Some(split) => (&bytes[..split], Some(OsStr::from_bytes(&bytes[split + 1..]).to_os_string())),
        None => (bytes, None),
    };
    let valid = !name.is_empty()
        && !name[0].is_ascii_digit()
        && name.iter().all(|&byte| byte.is_ascii_alphanumeric() || byte == b'_');
    if !valid {
        return Err(UsageError(format!("invalid environment variable name in --env: {}", text(value))));
    }
    Ok((OsStr::from_bytes(name).to_os_string(), assigned))
}

/// Options that take a value: (short, long).
const VALUED: &[(Option<char>, &str)] = &[
    (Some('r'), "rlimit"),
    (None, "allow-read"),
    (None, "allow-write"),
    (None, "env"),
    (None, "tasks"),
    (Some('m'), "memory"),
    (None, "allow-exec"),
    (None, "allow-connect"),
];

pub fn parse(arguments: impl IntoIterator<Item = OsString>) -> Result<Request, UsageError> {
    let mut options = Options::default();
    let mut arguments = arguments.into_iter();
    let mut wants_help = false;
    let mut wants_version = false;
    let mut script: Option<PathBuf> = None;

    let apply_valued = |name: &str, value: OsString, options: &mut Options| -> Result<(), UsageError> {
        match name {
            "rlimit" => match parse_rlimit(&value)? {
                // nproc is the sandbox's task budget, not the kernel's per-user counter.
                (Resource::Nproc, limit) => options.tasks = Some(limit),
                setting => options.rlimits.push(setting),
            },
            "memory" => {
                let text = value.to_string_lossy();
                let limit = Limit::parse(&text).ok_or_else(|| {
                    UsageError(format!("unable to parse --memory value: {text} (a size with optional K/M/G, or inf)"))
                })?;
                options.memory = Some(limit);
            }
            "tasks" => {
                let text = value.to_string_lossy();
                let limit = Limit::parse(&text)
                    .ok_or_else(|| UsageError(format!("unable to parse --tasks value: {text} (a number, or inf)")))?;
                options.tasks = Some(limit);
            }
            "allow-read" => options.allow_read.push(PathBuf::from(value)),
            "allow-write" => options.allow_write.push(PathBuf::from(value)),
            "allow-exec" => options.allow_exec.push(value),
            "allow-connect" => {
                options.allow_connect.push(crate::endpoints::parse(&value.to_string_lossy()).map_err(UsageError)?)
            }
            "env" => options.env.push(parse_env(&value)?),
            other => return Err(UsageError(format!("unknown option --{other}"))),
        }
        Ok(())
    };

    while let Some(argument) = arguments.next() {
        let bytes = argument.as_bytes();
        if bytes == b"--" {
            script = arguments.next().map(PathBuf::from);
            break;
        }
        if let Some(long) = bytes.strip_prefix(b"--") {
            let long =
                std::str::from_utf8(long).map_err(|_| UsageError(format!("unknown option {}", text(&argument))))?;
            let (name, inline_value) = match long.split_once('=') {
                Some((name, value)) => (name, Some(OsString::from(value))),
                None => (long, None),
            };
            if VALUED.iter().any(|&(_, known)| known == name) {
                let value = match inline_value {
                    Some(value) => value,
                    None => arguments.next().ok_or_else(|| UsageError(format!("option --{name} needs a value")))?,
                };
                apply_valued(name, value, &mut options)?;
                continue;
            }
            if name == "print-policy" {
                options.print_policy = match inline_value.as_ref().map(|value| value.to_string_lossy()) {
                    None => Some(PolicyFormat::Text),
                    Some(format) if format == "text" => Some(PolicyFormat::Text),
                    Some(format) if format == "json" => Some(PolicyFormat::Json),
                    Some(other) => return Err(UsageError(format!("--print-policy={other}: expected text or json"))),
                };
                continue;
            }
            if inline_value.is_some() {
                return Err(UsageError(format!("option --{name} takes no value")));
            }
            match name {
                "allow-script-dir" => options.allow_script_dir = true,
                "allow-tmp" => options.allow_tmp = true,
                "allow-localtime" => options.allow_localtime = true,
                "inherit-rlimits" => options.inherit_rlimits = true,
                "allow-degraded" => options.allow_degraded = true,
                "kill-on-deny" => options.kill_on_deny = true,
                "learn" => options.learn = true,
                "help" => wants_help = true,
                "version" => wants_version = true,
                _ => return Err(UsageError(format!("unknown option --{name}"))),
            }
            continue;
        }
        if bytes.len() > 1 && bytes[0] == b'-' {
            // One or more short flags; a valued one takes the rest of the word or the next argument.
            let flags = &bytes[1..];
            for (position, &flag) in flags.iter().enumerate() {
                match flag {
                    b's' => options.allow_script_dir = true,
                    b't' => options.allow_tmp = true,
                    b'l' => options.allow_localtime = true,
                    b'R' => options.inherit_rlimits = true,
                    b'k' => options.kill_on_deny = true,
                    b'h' => wants_help = true,
                    b'V' => wants_version = true,
                    b'm' => {
                        let rest = &flags[position + 1..];
                        let value = if rest.is_empty() {
                            arguments.next().ok_or_else(|| UsageError("option -m needs a value".to_string()))?
                        } else {
                            OsStr::from_bytes(rest).to_os_string()
                        };
                        apply_valued("memory", value, &mut options)?;
                        break;
                    }
                    b'r' => {
                        let rest = &flags[position + 1..];
                        let value = if rest.is_empty() {
                            arguments.next().ok_or_else(|| UsageError("option -r needs a value".to_string()))?
                        } else {
                            OsStr::from_bytes(rest).to_os_string()
                        };
                        apply_valued("rlimit", value, &mut options)?;
                        break;
                    }
                    other => return Err(UsageError(format!("unknown option -{}", char::from(other)))),
                }
            }
            continue;
        }
        script = Some(PathBuf::from(argument));
        break;
    }
    if wants_help {
        return Ok(Request::Help);
    }
    if wants_version {
        return Ok(Request::Version);
    }
    options.script = script
        .ok_or_else(|| UsageError("no script given (usage: HOST [OPTIONS] [--] SCRIPT [ARGS...])".to_string()))?;
    options.script_args = arguments.collect();
    Ok(Request::Run(Box::new(options)))
}

pub fn help(host: &str, language: &str) -> String {
    format!(
        "{host}: run an untrusted {language} script with the least privilege the kernel can enforce

usage: {host} [OPTIONS] [--] SCRIPT [ARGS...]

By default the script may read itself and the interpreter's own files, write to the stdout and
stderr it inherited, and nothing else: no other files, no network, no processes beyond what the
interpreter needs, no signals outside the sandbox, an empty environment, small resource limits.

options:
  -s, --allow-script-dir     read access beneath the script's directory (require/import siblings)
  -t, --allow-tmp            read and write beneath /tmp
  -l, --allow-localtime      read /etc/localtime and the time zone database
      --allow-read PATH      read access beneath PATH (repeatable; PATH must exist)
      --allow-write PATH     read and write access beneath PATH (repeatable; PATH must exist)
      --allow-exec PROGRAM   the script may run PROGRAM (a name on PATH, or a path): it and the
                             files that run it become executable; nothing else (repeatable)
      --allow-connect HOST:PORT
                             the script may open TCP connections to HOST (a name, resolved now,
                             or an address; [IPV6]:PORT) on PORT, and nowhere else (repeatable;
                             needs landlock ABI 4); {host}'s supervisor makes each connection
  -r, --rlimit RLIMIT=VALUE  set a resource limit (repeatable): RLIMIT is as, core, cpu, data, fsize,
                             locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime,
                             sigpending or stack; VALUE is a number with optional K/M/G, or inf
  -m, --memory SIZE          the memory the script may use (data, as and the interpreter's heap
                             limit follow it), e.g. 2G; inf for none
      --tasks N              the most processes and threads the script may have at once, counted
                             for this run alone (also -r nproc=N); inf leaves nproc inherited
  -R, --inherit-rlimits      start from the inherited limits instead of {host}'s defaults
                             (-r still applies on top, in any order)
      --env NAME[=VALUE]     pass NAME (inherited value, or VALUE) to the script (repeatable)
  -k, --kill-on-deny         end the whole sandbox at the first refused call (SIGSYS, 159)
                             instead of failing the call with EPERM
      --allow-degraded       run even if the kernel has no landlock (no filesystem restriction)
      --learn                run as usual, then print what the sandbox refused and the options
                             that grant it (paths, programs, endpoints, limits), with the command
                             line to run again; processes may be created, so that a program the
                             script runs can be named (landlock still lets nothing execute)
      --print-policy[=json]  print the complete policy for this command line (as text, or as JSON
                             for tools) and exit
  -h, --help                 print this help
  -V, --version              print the versions of {host}, the interpreter and the kernel's landlock

A system call outside the allow-list fails with EPERM, so the script sees an ordinary error at
its own line, and {host} prints one line per distinct refused call on stderr:
\"{host}: sandbox refused NAME(ARGUMENT)\". The call never takes effect. A call that
--print-policy lists as \"emulate\" (chmod, utime and file watches, which landlock does not
govern) is made by {host}'s supervisor itself, and only beneath your grants (run by root on a
kernel without landlock it is refused).

stdin, stdout and stderr are private: the script gets pipes (a pseudo-terminal where yours is a
terminal) that {host} relays, so it can never read, rewrite or reopen your own descriptors.
When the script's main process ends, every process it started is ended too.

exit status: the script's own; 1 for a usage error or a sandbox stage that could not be applied;
2 for an uncaught error in the script; with --kill-on-deny, death by SIGSYS (a shell shows 159).
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(arguments: &[&str]) -> Result<Request, UsageError> {
        parse(arguments.iter().map(OsString::from))
    }

    fn options(arguments: &[&str]) -> Options {
        match run(arguments) {
            Ok(Request::Run(options)) => *options,
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn script_arguments_are_not_options() {
        let parsed = options(&["-s", "game.lua", "-t", "--print-policy"]);
        assert!(parsed.allow_script_dir);
        assert!(!parsed.allow_tmp);
        assert!(parsed.print_policy.is_none());
        assert_eq!(parsed.script, PathBuf::from("game.lua"));
        assert_eq!(parsed.script_args, vec![OsString::from("-t"), OsString::from("--print-policy")]);
    }

    #[test]
    fn double_dash_allows_a_script_named_like_an_option() {
        let parsed = options(&["--", "-weird.lua", "x"]);
        assert_eq!(parsed.script, PathBuf::from("-weird.lua"));
        assert_eq!(parsed.script_args, vec![OsString::from("x")]);
    }

    #[test]
    fn clustered_short_flags_and_rlimits() {
        let parsed = options(&["-stl", "-rnofile=64", "-r", "as=1G", "--rlimit=cpu=inf", "s.lua"]);
        assert!(parsed.allow_script_dir && parsed.allow_tmp && parsed.allow_localtime);
        assert_eq!(
            parsed.rlimits,
            vec![
                (Resource::Nofile, Limit::Value(64)),
                (Resource::As, Limit::Value(1 << 30)),
                (Resource::Cpu, Limit::Infinity)
            ]
        );
    }

    #[test]
    fn bad_input_is_one_clear_error() {
        assert_eq!(run(&["--bogus", "x"]), Err(UsageError("unknown option --bogus".into())));
        assert_eq!(run(&["-r", "bogus=1", "x"]), Err(UsageError("unknown rlimit: bogus".into())));
        assert!(run(&["-r", "nofile=12q", "x"]).is_err());
        assert!(run(&["-r", "nofile", "x"]).is_err());
        assert!(run(&[]).is_err());
        assert!(run(&["--env", "1BAD", "x"]).is_err());
        assert!(run(&["--allow-read"]).is_err());
    }

    #[test]
    fn env_takes_names_and_assignments() {
        let parsed = options(&["--env", "TERM", "--env", "GREETING=hi=there", "s.lua"]);
        assert_eq!(
            parsed.env,
            vec![(OsString::from("TERM"), None), (OsString::from("GREETING"), Some(OsString::from("hi=there")))]
        );
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(run(&["-h"]), Ok(Request::Help));
        assert_eq!(run(&["--version"]), Ok(Request::Version));
    }
}
