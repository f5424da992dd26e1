//! `--print-policy`: the complete effective policy, as one report ([`PolicyReport`]) with two
//! renderings: text, as a person reads it, and JSON (`--print-policy=json`), which tools read.

use std::fmt::Write as _;

use h_sandbox::{
    LandlockFeature, LandlockFeatures, Limit, OnRefusal, Policy, Resource, RuleAction, SeccompProgram, RLIMIT_RESOURCES,
};

use crate::json::Json;
use crate::{HostProfile, Options, Started};

/// Everything `--print-policy` states, as data.
pub struct PolicyReport {
    pub host: &'static str,
    pub version: &'static str,
    pub interpreter: String,
    pub script: String,
    pub landlock: LandlockReport,
    pub seccomp: SeccompReport,
    /// (name, value, unit); nproc is the task budget.
    pub rlimits: Vec<(&'static str, String, &'static str)>,
    pub tasks: Option<u64>,
    pub environment: Vec<(String, String)>,
    pub script_arguments: Vec<String>,
    /// `--allow-connect`: (endpoint as given, the addresses it grants).
    pub connect: Vec<(String, Vec<String>)>,
}

/// A feature as both outputs name it: `network: TCP bind and connect (ABI 4)`.
fn feature_line(feature: &LandlockFeature) -> String {
    format!("{} (ABI {})", feature.what, feature.since)
}

pub struct LandlockReport {
    /// The kernel's ABI, `None` without landlock.
    pub abi: Option<u32>,
    pub degraded: bool,
    pub features: Vec<LandlockFeature>,
    /// (access, path, why)
    pub rules: Vec<(&'static str, String, String)>,
}

/// One rule as the report shows it: (action, syscall, conditions, why).
pub type DescribedRule = (String, &'static str, Vec<&'static str>, &'static str);

pub struct SeccompReport {
    pub arch: &'static str,
    pub instructions: usize,
    pub kill_on_deny: bool,
    /// `--learn`: the calls the supervisor sees before the program decides them (empty otherwise).
    pub observed: Vec<&'static str>,
    pub rules: Vec<DescribedRule>,
    /// The supervisor's own filter (every call it does not allow ends the supervisor): its
    /// instruction count and rules, as above.
    pub supervisor_instructions: usize,
    pub supervisor_rules: Vec<DescribedRule>,
}

/// A program's rules as the report shows them.
fn described_rules(program: &SeccompProgram) -> Vec<DescribedRule> {
    program
        .rules
        .iter()
        .map(|rule| {
            let action = match rule.action {
                RuleAction::Allow => "allow".to_string(),
                RuleAction::Errno(errno) => format!("errno {errno}"),
                RuleAction::FirstOnly => "allow once".to_string(),
                RuleAction::Emulate => "emulate".to_string(),
            };
            (action, rule.syscall, rule.conditions.to_vec(), rule.why)
        })
        .collect()
}

/// Rules as JSON objects.
fn rules_json(rules: &[DescribedRule]) -> Json {
    Json::Array(
        rules
            .iter()
            .map(|(action, syscall, conditions, why)| {
                Json::object([
                    ("action", Json::string(action)),
                    ("syscall", Json::string(*syscall)),
                    ("conditions", Json::Array(conditions.iter().map(|c| Json::string(*c)).collect())),
                    ("why", Json::string(*why)),
                ])
            })
            .collect(),
    )
}

/// Rules as text lines, each with its why.
fn rules_text(out: &mut String, rules: &[DescribedRule]) {
    for (action, syscall, conditions, why) in rules {
        let condition = if conditions.is_empty() { String::new() } else { format!(" if {}", conditions.join(" and ")) };
        let _ = writeln!(out, "  {action} {syscall}{condition}");
        let _ = writeln!(out, "      # {why}");
    }
}

impl PolicyReport {
    pub fn new(profile: &HostProfile, options: &Options, policy: &Policy, started: &Started) -> PolicyReport {
        let abi = h_sandbox::landlock_abi();
        let landlock = LandlockReport {
            abi,
            degraded: abi.is_none() && options.allow_degraded,
            features: abi.map(|abi| LandlockFeatures { abi }.describe()).unwrap_or_default(),
            rules: policy
                .fs_rules
                .iter()
                .map(|rule| (rule.access.describe(), rule.path.display().to_string(), rule.why.clone()))
                .collect(),
        };
        let program = policy.seccomp;
        let seccomp = SeccompReport {
            arch: program.arch,
            instructions: match policy.learn {
                Some(_) => program.observing(h_sandbox::OBSERVED).len(),
                None => program.instructions.len(),
            },
            kill_on_deny: policy.on_refusal == OnRefusal::Kill,
            observed: if policy.learn.is_some() { h_sandbox::OBSERVED.to_vec() } else { Vec::new() },
            rules: described_rules(program),
            supervisor_instructions: h_sandbox::supervisor_program().instructions.len(),
            supervisor_rules: described_rules(h_sandbox::supervisor_program()),
        };
        let rlimits = RLIMIT_RESOURCES
            .into_iter()
            .map(|resource| {
                if resource == Resource::Nproc {
                    return (resource.name(), "budget".to_string(), "see tasks below");
                }
                let value = match policy.rlimits.iter().find(|(set, _)| *set == resource) {
                    Some((_, limit)) => limit.to_string(),
                    None => match resource.current() {
                        Ok((soft, hard)) => format!("inherited (soft {soft}, hard {hard})"),
                        Err(error) => format!("inherited (unreadable: {error})"),
                    },
                };
                (resource.name(), value, resource.unit())
            })
            .collect();
        PolicyReport {
            host: profile.name,
            version: env!("CARGO_PKG_VERSION"),
            interpreter: (profile.interpreter_version)(),
            script: started.script_path.display().to_string(),
            landlock,
            seccomp,
            rlimits,
            tasks: match policy.tasks {
                Limit::Value(tasks) => Some(tasks),
                Limit::Infinity => None,
            },
            environment: policy
                .environment
                .iter()
                .map(|(name, value)| (name.to_string_lossy().into_owned(), value.to_string_lossy().into_owned()))
                .collect(),
            script_arguments: started.script_args.iter().map(|arg| arg.to_string_lossy().into_owned()).collect(),
            connect: started
                .endpoints
                .iter()
                .map(|(endpoint, addresses)| {
                    (endpoint.clone(), addresses.iter().map(std::net::SocketAddr::to_string).collect())
                })
                .collect(),
        }
    }

    /// The report as JSON: every rule, every limit, what the kernel enforces.
    pub fn json(&self) -> Json {
        let landlock = &self.landlock;
        let seccomp = &self.seccomp;
        Json::object([
            ("host", Json::string(self.host)),
            ("version", Json::string(self.version)),
            ("interpreter", Json::string(&self.interpreter)),
            ("script", Json::string(&self.script)),
            (
                "order",
                Json::Array(
                    ["rlimits", "capabilities", "no_new_privs", "landlock", "seccomp"].map(Json::string).to_vec(),
                ),
            ),
            (
                "landlock",
                Json::object([
                    ("abi", landlock.abi.map_or(Json::Null, |abi| Json::Number(u64::from(abi)))),
                    ("degraded", Json::Bool(landlock.degraded)),
                    (
                        "features",
                        Json::Array(
                            landlock
                                .features
                                .iter()
                                .map(|feature| {
                                    Json::object([
                                        ("feature", Json::string(feature_line(feature))),
                                        ("abi", Json::Number(u64::from(feature.since))),
                                        ("enforced", Json::Bool(feature.enforced)),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                    (
                        "rules",
                        Json::Array(
                            landlock
                                .rules
                                .iter()
                                .map(|(access, path, why)| {
                                    Json::object([
                                        ("access", Json::string(*access)),
                                        ("path", Json::string(path)),
                                        ("why", Json::string(why)),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                    ("tcp", Json::string(if landlock.abi.unwrap_or(0) >= 4 { "denied" } else { "not enforced" })),
                    ("scopes", Json::Bool(landlock.abi.unwrap_or(0) >= 6)),
                ]),
            ),
            (
                "connect",
                Json::Array(
                    self.connect
                        .iter()
                        .map(|(endpoint, addresses)| {
                            Json::object([
                                ("endpoint", Json::string(endpoint)),
                                ("addresses", Json::Array(addresses.iter().map(Json::string).collect())),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "seccomp",
                Json::object([
                    ("arch", Json::string(seccomp.arch)),
                    ("instructions", Json::Number(seccomp.instructions as u64)),
                    ("refused", Json::string(if seccomp.kill_on_deny { "kill" } else { "EPERM" })),
                    ("observed", Json::Array(seccomp.observed.iter().map(|name| Json::string(*name)).collect())),
                    ("rules", rules_json(&seccomp.rules)),
                ]),
            ),
            (
                "supervisor_seccomp",
                Json::object([
                    ("instructions", Json::Number(seccomp.supervisor_instructions as u64)),
                    ("refused", Json::string("kill")),
                    ("rules", rules_json(&seccomp.supervisor_rules)),
                ]),
            ),
            (
                "rlimits",
                Json::Array(
                    self.rlimits
                        .iter()
                        .map(|(name, value, unit)| {
                            Json::object([
                                ("name", Json::string(*name)),
                                ("value", Json::string(value)),
                                ("unit", Json::string(*unit)),
                            ])
                        })
                        .collect(),
                ),
            ),
            ("tasks", self.tasks.map_or(Json::Null, Json::Number)),
            ("own_uid_base_for_root", Json::Number(u64::from(h_sandbox::OWN_UID_BASE))),
            (
                "environment",
                Json::Object(
                    self.environment.iter().map(|(name, value)| (name.clone(), Json::string(value))).collect(),
                ),
            ),
            ("script_arguments", Json::Array(self.script_arguments.iter().map(Json::string).collect())),
        ])
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let host = self.host;
        let _ = writeln!(out, "{host} {} policy for {}", self.version, self.script);
        let _ = writeln!(out, "interpreter: {}", self.interpreter);
        let _ = writeln!(
            out,
            "order: rlimits -> capabilities -> no_new_privs -> landlock -> seccomp, before the script's first line"
        );
        self.text_landlock(&mut out);
        self.text_seccomp(&mut out);
        self.text_rest(&mut out);
        out
    }

    fn text_landlock(&self, out: &mut String) {
        let landlock = &self.landlock;
        let _ = writeln!(out, "\nlandlock:");
        match landlock.abi {
            Some(abi) => {
                let _ = writeln!(out, "  kernel ABI {abi}; enforced features:");
                for feature in &landlock.features {
                    let _ =
                        writeln!(out, "    [{}] {}", if feature.enforced { "x" } else { " " }, feature_line(feature));
                }
            }
            None if landlock.degraded => {
                let _ = writeln!(out, "  NOT ENFORCED: the kernel has no landlock and --allow-degraded was given;");
                let _ = writeln!(
                    out,
                    "  the filesystem, TCP and scope restrictions below are missing (seccomp still applies)"
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  UNAVAILABLE: the kernel has no landlock; {} refuses to run without --allow-degraded",
                    self.host
                );
            }
        }
        let abi = landlock.abi.unwrap_or(0);
        if abi >= 1 {
            let _ = writeln!(out, "  rules (everything else on the filesystem is denied):");
        } else {
            let _ = writeln!(out, "  rules (NOT ENFORCED on this kernel; what landlock would grant):");
        }
        for (access, path, why) in &landlock.rules {
            let _ = writeln!(out, "    {access:<13} {path}  ({why})");
        }
        if abi >= 4 {
            let _ = writeln!(out, "  network: every TCP bind and connect of the script denied (no port rules)");
        } else {
            let _ =
                writeln!(out, "  network: TCP not restricted by landlock on this kernel (ABI < 4); seccomp decides");
        }
        if !self.connect.is_empty() {
            let _ = writeln!(
                out,
                "  connect (--allow-connect): the supervisor connects the script's TCP sockets to these alone"
            );
            let _ = writeln!(out, "    (its own landlock domain reaches their ports, and no other):");
            for (endpoint, addresses) in &self.connect {
                let _ = writeln!(out, "    {endpoint:<24} {}", addresses.join(", "));
            }
        }
        if abi >= 6 {
            let _ = writeln!(
                out,
                "  scopes: no signals to, and no abstract unix sockets of, processes outside the sandbox"
            );
        } else {
            let _ = writeln!(
                out,
                "  scopes: not enforced on this kernel (ABI < 6); seccomp decides which signals and sockets"
            );
        }
    }

    fn text_seccomp(&self, out: &mut String) {
        let seccomp = &self.seccomp;
        let host = self.host;
        let refusal = if seccomp.kill_on_deny {
            format!("refuse, printing \"{host}: sandbox refused NAME(ARG)\", then end the sandbox by SIGSYS (-k)")
        } else {
            format!("refuse with EPERM, printing \"{host}: sandbox refused NAME(ARG)\" once per call")
        };
        let _ =
            writeln!(out, "\nseccomp ({}, {} instructions; default: {refusal};", seccomp.arch, seccomp.instructions);
        let _ = writeln!(out, "  other architectures and x32 calls denied; argument checks compare all 64 bits):");
        rules_text(out, &seccomp.rules);
        if !seccomp.observed.is_empty() {
            let _ = writeln!(
                out,
                "  --learn: {} reach the supervisor first, which notes the path they name and answers as these rules do",
                seccomp.observed.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "\nthe supervisor's own seccomp ({}, {} instructions; installed before the script can run; any",
            seccomp.arch, seccomp.supervisor_instructions
        );
        let _ = writeln!(out, "  other call, another architecture or x32 ends the supervisor, and the run with it):");
        rules_text(out, &seccomp.supervisor_rules);
    }

    fn text_rest(&self, out: &mut String) {
        let host = self.host;
        let _ = writeln!(out, "\nrlimits (soft = hard):");
        for (name, value, unit) in &self.rlimits {
            let _ = writeln!(out, "  {name:<11} {value:<10} {unit}");
        }
        let _ = writeln!(out, "  SIGXFSZ ignored: writing past fsize fails with EFBIG instead of killing {host}");
        let _ = writeln!(
            out,
            "\ncapabilities: effective, permitted, inheritable and ambient emptied (any uid, root included);"
        );
        let _ = writeln!(
            out,
            "  bounding set emptied and securebits locked (NOROOT, NO_SETUID_FIXUP) when run with CAP_SETPCAP"
        );
        match self.tasks {
            None => {
                let _ = writeln!(out, "tasks: no budget (--tasks inf): RLIMIT_NPROC as inherited, uid unchanged");
            }
            Some(tasks) => {
                let _ = writeln!(
                    out,
                    "tasks: at most {tasks} processes and threads at once in this run, {host} included (RLIMIT_NPROC):"
                );
                let _ = writeln!(
                    out,
                    "  run by a user: the tasks the user runs at start + {tasks}; racy with the user's other"
                );
                let _ = writeln!(out, "  processes only (if they end meanwhile, the run may grow by as many)");
                let _ = writeln!(
                    out,
                    "  run by root: a real uid of the run's own ({} + the supervisor's pid), so the limit counts the run",
                    h_sandbox::OWN_UID_BASE
                );
                let _ = writeln!(
                    out,
                    "  alone; effective, saved and filesystem uid stay 0 (files stay root's, without capabilities;"
                );
                let _ = writeln!(
                    out,
                    "  a kernel that resets the effective uid at an exec under no_new_privs makes it the run's own)"
                );
            }
        }
        let _ = writeln!(out, "no_new_privs: set");
        let _ = writeln!(
            out,
            "supervisor: a parent process answers refused calls, relays stdio and ends every process of the run"
        );
        let _ = writeln!(
            out,
            "  when {host}'s main process ends; it has its own filter, reaches only the files {host} reaches, and"
        );
        let _ = writeln!(
            out,
            "  no capabilities (run by root: CAP_SYS_PTRACE alone, to read the run's calls, which landlock confines to the run)"
        );
        let _ = writeln!(
            out,
            "file descriptors: only 0, 1 and 2, and those are private stand-ins relayed by the supervisor:"
        );
        let _ = writeln!(out, "  pipes, /dev/null for /dev/null, and one private pseudo-terminal for every terminal");
        let _ = writeln!(
            out,
            "  (granted as /dev/pts/N and /dev/tty: read, write, ioctl); a new session and process group"
        );
        if self.environment.is_empty() {
            let _ = writeln!(out, "environment: empty");
        } else {
            let _ = writeln!(out, "environment:");
            for (name, value) in &self.environment {
                let _ = writeln!(out, "  {name}={value}");
            }
        }
        let _ = writeln!(out, "script arguments: {:?}", self.script_arguments);
    }
}
