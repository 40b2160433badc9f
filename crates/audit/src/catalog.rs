//! The rule catalog. Titles, rationales and remediations are estiba's own
//! words; the CIS Docker Benchmark is cited by id only, as its licence
//! asks. Ids are `ESB-<target>-<n>`: F for Containerfiles, I for images,
//! T for task definitions, C for containers. A rule's id never changes once released:
//! SARIF fingerprints and ignore files name it.

use serde::Serialize;

/// How bad a finding is. Ordered: `Info < Low < … < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// GitHub code scanning's `security-severity`: a string from "0.0" to
    /// "10.0", read as critical above 9.0, high from 7.0, medium from 4.0.
    pub fn security_severity(self) -> &'static str {
        match self {
            Severity::Info => "0.0",
            Severity::Low => "3.0",
            Severity::Medium => "5.5",
            Severity::High => "8.0",
            Severity::Critical => "9.5",
        }
    }

    /// SARIF's `level`.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Info => "note",
            Severity::Low | Severity::Medium => "warning",
            Severity::High | Severity::Critical => "error",
        }
    }

    /// What a finding costs the score, out of 100 per target.
    pub fn weight(self) -> u32 {
        match self {
            Severity::Info => 0,
            Severity::Low => 2,
            Severity::Medium => 5,
            Severity::High => 10,
            Severity::Critical => 20,
        }
    }
}

/// What a rule checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Containerfile,
    Image,
    #[serde(rename = "taskdef")]
    TaskDefinition,
    Container,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Containerfile => "containerfile",
            TargetKind::Image => "image",
            TargetKind::TaskDefinition => "taskdef",
            TargetKind::Container => "container",
        }
    }
}

/// One rule. Cross-references are lists: one rule may answer several
/// controls of a benchmark, and several rules one control.
#[derive(Debug, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub target: TargetKind,
    pub severity: Severity,
    pub title: &'static str,
    pub rationale: &'static str,
    pub remediation: &'static str,
    /// False for rules that report facts to be judged by a person.
    pub automated: bool,
    pub cis: &'static [&'static str],
    pub owasp: &'static [&'static str],
    pub dockle: &'static [&'static str],
    pub trivy: &'static [&'static str],
    pub hadolint: &'static [&'static str],
}

impl Rule {
    /// Whether `reference` names this rule: its id, or `cis:5.5`,
    /// `owasp:D04`, `dockle:CIS-DI-0001`, `trivy:DS-0002`, `hadolint:DL3002`.
    pub fn answers_to(&self, reference: &str) -> bool {
        if reference.eq_ignore_ascii_case(self.id) {
            return true;
        }
        let Some((scheme, id)) = reference.split_once(':') else {
            return false;
        };
        let list = match scheme.to_ascii_lowercase().as_str() {
            "cis" => self.cis,
            "owasp" => self.owasp,
            "dockle" => self.dockle,
            "trivy" => self.trivy,
            "hadolint" => self.hadolint,
            _ => return false,
        };
        list.iter().any(|r| r.eq_ignore_ascii_case(id))
    }
}

/// The rule with this id. Checks name their rules through it, so a typo is
/// a test failure, not a silent miss.
pub fn rule(id: &str) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("rule {id} is not in the catalog"))
}

/// Every rule a reference names; an error if none does.
pub fn resolve(reference: &str) -> crate::Result<Vec<&'static Rule>> {
    let found: Vec<&'static Rule> = RULES.iter().filter(|r| r.answers_to(reference)).collect();
    if found.is_empty() {
        return Err(crate::Error::UnknownRule(reference.to_string()));
    }
    Ok(found)
}

const NONE: &[&str] = &[];

pub static RULES: &[Rule] = &[
    // Containerfiles.
    Rule {
        id: "ESB-F-001",
        target: TargetKind::Containerfile,
        severity: Severity::High,
        title: "The final stage never sets a USER",
        rationale: "Without USER the container's process runs as root, so a breakout or a \
                    writable host mount is root's.",
        remediation: "Create an unprivileged user in the image and end the final stage with \
                      USER name or USER uid.",
        automated: true,
        cis: &["4.1"],
        owasp: &["D01"],
        dockle: NONE,
        trivy: &["DS-0002"],
        hadolint: NONE,
    },
    Rule {
        id: "ESB-F-002",
        target: TargetKind::Containerfile,
        severity: Severity::High,
        title: "The last USER of the final stage is root",
        rationale: "root, 0, root:GROUP and 0:GROUP all leave the process with uid 0.",
        remediation: "Switch to an unprivileged user after the steps that need root.",
        automated: true,
        cis: &["4.1"],
        owasp: &["D01"],
        dockle: NONE,
        trivy: &["DS-0002"],
        hadolint: &["DL3002"],
    },
    Rule {
        id: "ESB-F-003",
        target: TargetKind::Containerfile,
        severity: Severity::Medium,
        title: "ADD fetches a URL or copies a plain file",
        rationale: "ADD downloads without verifying what arrives and unpacks archives \
                    implicitly; COPY does only what it says.",
        remediation: "Use COPY for local files; download with a checksum-verifying RUN step, \
                      or ADD --checksum.",
        automated: true,
        cis: &["4.9"],
        owasp: &["D08"],
        dockle: NONE,
        trivy: &["DS-0005"],
        hadolint: &["DL3020"],
    },
    Rule {
        id: "ESB-F-004",
        target: TargetKind::Containerfile,
        severity: Severity::Medium,
        title: "FROM names a latest or missing tag",
        rationale: "The base changes under the build without notice, so two builds of one \
                    file differ and a compromised tag flows in.",
        remediation: "Pin the base image by a version tag, or better by digest.",
        automated: true,
        cis: &["4.2", "5.28"],
        owasp: &["D08"],
        dockle: NONE,
        trivy: &["DS-0001"],
        hadolint: &["DL3006", "DL3007"],
    },
    Rule {
        id: "ESB-F-005",
        target: TargetKind::Containerfile,
        severity: Severity::High,
        title: "RUN uses sudo",
        rationale: "sudo in an image means a privilege boundary inside it that any process \
                    can try to cross; build steps run as root already.",
        remediation: "Run the step as root with USER root, then switch back; remove sudo.",
        automated: true,
        cis: NONE,
        owasp: &["D04"],
        dockle: NONE,
        trivy: &["DS-0010"],
        hadolint: &["DL3004"],
    },
    Rule {
        id: "ESB-F-006",
        target: TargetKind::Containerfile,
        severity: Severity::Low,
        title: "apt-get install without --no-install-recommends",
        rationale: "Recommended packages widen the attack surface with software nobody asked for.",
        remediation: "Add --no-install-recommends to apt-get install.",
        automated: true,
        cis: &["4.3"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: &["DS-0029"],
        hadolint: &["DL3015"],
    },
    Rule {
        id: "ESB-F-007",
        target: TargetKind::Containerfile,
        severity: Severity::High,
        title: "A download is piped straight into a shell",
        rationale: "curl … | sh runs whatever the server sends, unverified, and a failed \
                    download can still run half a script.",
        remediation: "Download to a file, verify its checksum or signature, then run it.",
        automated: true,
        cis: &["4.11"],
        owasp: &["D08"],
        dockle: NONE,
        trivy: NONE,
        hadolint: &["DL4006"],
    },
    Rule {
        id: "ESB-F-008",
        target: TargetKind::Containerfile,
        severity: Severity::Critical,
        title: "A secret is set in ENV or ARG",
        rationale: "ENV values and ARG defaults are stored in the image's config and history, \
                    readable by anyone who can pull it.",
        remediation: "Pass secrets at run time (task definition secrets, a mounted file) or \
                      with a build secret mount; never bake them in.",
        automated: true,
        cis: &["4.10"],
        owasp: &["D06"],
        dockle: NONE,
        trivy: &["DS-0031"],
        hadolint: &["DL3064"],
    },
    Rule {
        id: "ESB-F-009",
        target: TargetKind::Containerfile,
        severity: Severity::High,
        title: "A step turns certificate or signature verification off",
        rationale: "curl -k, wget --no-check-certificate, apk --allow-untrusted, \
                    --nogpgcheck and their kin accept whatever a network attacker serves.",
        remediation: "Remove the flag; install the CA or key the download needs instead.",
        automated: true,
        cis: &["4.11"],
        owasp: &["D08"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-F-010",
        target: TargetKind::Containerfile,
        severity: Severity::Medium,
        title: "A package index update is not followed by an install in the same RUN",
        rationale: "A cached update layer makes later installs use a stale index, and so \
                    old, unpatched packages.",
        remediation: "Update and install in one RUN: apt-get update && apt-get install …",
        automated: true,
        cis: &["4.7"],
        owasp: &["D02"],
        dockle: NONE,
        trivy: &["DS-0017"],
        hadolint: NONE,
    },
    Rule {
        id: "ESB-F-011",
        target: TargetKind::Containerfile,
        severity: Severity::Medium,
        title: "EXPOSE 22",
        rationale: "An SSH server in a container is a second way in that bypasses the \
                    platform's exec and its audit trail.",
        remediation: "Remove sshd and EXPOSE 22; use estiba exec.",
        automated: true,
        cis: &["5.7"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: &["DS-0004"],
        hadolint: NONE,
    },
    Rule {
        id: "ESB-F-012",
        target: TargetKind::Containerfile,
        severity: Severity::High,
        title: "WORKDIR or VOLUME on a system directory",
        rationale: "A volume on /proc, /sys or /dev, or work in /, /etc or /usr, invites \
                    writes to the places the host and runtime rely on.",
        remediation: "Work and keep data under an application directory such as /app or /data.",
        automated: true,
        cis: &["5.6"],
        owasp: &["D04"],
        dockle: &["DKL-DI-0002"],
        trivy: &["DS-0030"],
        hadolint: NONE,
    },
    Rule {
        id: "ESB-F-013",
        target: TargetKind::Containerfile,
        severity: Severity::Low,
        title: "The final stage has no HEALTHCHECK",
        rationale: "Without a health check a hung process looks healthy, and deployments \
                    cannot tell a good revision from a bad one.",
        remediation: "Add HEALTHCHECK CMD … that exercises the service.",
        automated: true,
        cis: &["4.6"],
        owasp: NONE,
        dockle: NONE,
        trivy: &["DS-0026"],
        hadolint: &["DL3057"],
    },
    // Images.
    Rule {
        id: "ESB-I-001",
        target: TargetKind::Image,
        severity: Severity::High,
        title: "The image runs as root",
        rationale: "Its config's User is unset, root, 0, root:GROUP or 0:GROUP.",
        remediation: "Build with a final USER that is not root.",
        automated: true,
        cis: &["4.1"],
        owasp: &["D01"],
        dockle: &["CIS-DI-0001"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-002",
        target: TargetKind::Image,
        severity: Severity::Low,
        title: "The image has no health check",
        rationale: "Without one, a hung process looks healthy to the engine and to services.",
        remediation: "Add a HEALTHCHECK to its Containerfile, or a healthCheck to the task.",
        automated: true,
        cis: &["4.6"],
        owasp: NONE,
        dockle: &["CIS-DI-0006"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-003",
        target: TargetKind::Image,
        severity: Severity::Medium,
        title: "A history step updates a package index without installing",
        rationale: "The cached update layer leaves later installs with a stale index.",
        remediation: "Update and install in one RUN.",
        automated: true,
        cis: &["4.7"],
        owasp: &["D02"],
        dockle: &["CIS-DI-0007"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-004",
        target: TargetKind::Image,
        severity: Severity::Info,
        title: "A file keeps a setuid or setgid bit",
        rationale: "Each such file is a way from an unprivileged user to its owner; only \
                    the bits still set once every layer is applied count.",
        remediation: "Remove the bits (chmod a-s) from files the application does not need.",
        automated: true,
        cis: &["4.8"],
        owasp: &["D04"],
        dockle: &["CIS-DI-0008"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-005",
        target: TargetKind::Image,
        severity: Severity::Low,
        title: "A history step used ADD",
        rationale: "ADD fetches and unpacks implicitly; COPY is explicit. The first ADD (the \
                    base file system) is not counted.",
        remediation: "Use COPY in the Containerfile.",
        automated: true,
        cis: &["4.9"],
        owasp: NONE,
        dockle: &["CIS-DI-0009"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-006",
        target: TargetKind::Image,
        severity: Severity::Critical,
        title: "A secret is set in the image's environment or history",
        rationale: "A variable named like a password, secret, token or key, with a value, \
                    is readable by anyone who can pull the image.",
        remediation: "Remove it from the build; pass secrets at run time.",
        automated: true,
        cis: &["4.10"],
        owasp: &["D06"],
        dockle: &["CIS-DI-0010"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-007",
        target: TargetKind::Image,
        severity: Severity::High,
        title: "A credential file is in the image",
        rationale: "Files such as credentials.json, id_rsa, .env or .npmrc usually hold \
                    secrets, and every layer is readable by whoever pulls.",
        remediation: "Keep them out of the build context (.dockerignore) or remove them in \
                      the same step that used them.",
        automated: true,
        cis: &["4.10"],
        owasp: &["D06"],
        dockle: &["CIS-DI-0010"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-008",
        target: TargetKind::Image,
        severity: Severity::Critical,
        title: "A private key is in the image",
        rationale: "A file whose content is a PEM or OpenSSH private key gives its holder \
                    whatever the key signs or decrypts.",
        remediation: "Remove the key from the image and rotate it.",
        automated: true,
        cis: &["4.10"],
        owasp: &["D06"],
        dockle: &["CIS-DI-0010"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-009",
        target: TargetKind::Image,
        severity: Severity::High,
        title: "The image uses sudo",
        rationale: "A history step ran sudo, or /usr/bin/sudo is in the file system.",
        remediation: "Remove sudo; run privileged build steps as root and switch user after.",
        automated: true,
        cis: NONE,
        owasp: &["D04"],
        dockle: &["DKL-DI-0001"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-010",
        target: TargetKind::Image,
        severity: Severity::Low,
        title: "Package manager caches were left in the image",
        rationale: "apt lists or apk caches make the image larger and keep a stale index.",
        remediation: "apk add --no-cache; rm -rf /var/lib/apt/lists/* in the step that installs.",
        automated: true,
        cis: NONE,
        owasp: &["D04"],
        dockle: &["DKL-DI-0004", "DKL-DI-0005"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-011",
        target: TargetKind::Image,
        severity: Severity::Medium,
        title: "The image is named by latest, or by no tag",
        rationale: "What latest means changes under whoever runs it.",
        remediation: "Tag releases with versions and run those, or run by digest.",
        automated: true,
        cis: &["5.28"],
        owasp: &["D08"],
        dockle: &["DKL-DI-0006"],
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-012",
        target: TargetKind::Image,
        severity: Severity::Info,
        title: "The image is old",
        rationale: "An image not rebuilt for 90 days misses its base's security patches.",
        remediation: "Rebuild regularly from a patched base.",
        automated: false,
        cis: &["4.4"],
        owasp: &["D02"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-I-013",
        target: TargetKind::Image,
        severity: Severity::High,
        title: "An account has an empty password",
        rationale: "An empty password field in /etc/shadow lets anyone log in as that user.",
        remediation: "Lock the account (passwd -l) or set its field to ! or *.",
        automated: true,
        cis: NONE,
        owasp: &["D04"],
        dockle: &["DKL-LI-0001"],
        trivy: NONE,
        hadolint: NONE,
    },
    // Containers (what estiba run asks for, or inspect records).
    Rule {
        id: "ESB-C-001",
        target: TargetKind::Container,
        severity: Severity::Critical,
        title: "A container is privileged",
        rationale: "privileged gives the container every capability and every device: it is the host's root.",
        remediation: "Remove --privileged; add only the capabilities needed.",
        automated: true,
        cis: &["5.5"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-002",
        target: TargetKind::Container,
        severity: Severity::High,
        title: "A container adds capabilities beyond the default set",
        rationale: "SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE and their kin reach past the container's namespaces.",
        remediation: "Drop the --cap-add entries the container can do without.",
        automated: true,
        cis: &["5.4"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-003",
        target: TargetKind::Container,
        severity: Severity::High,
        title: "A sensitive host directory is bound into a container",
        rationale: "/, /boot, /dev, /etc, /lib, /proc, /sys and /usr from the host let a container read or change the host.",
        remediation: "Bind only application directories, or use named volumes.",
        automated: true,
        cis: &["5.6"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-004",
        target: TargetKind::Container,
        severity: Severity::Critical,
        title: "A container engine's socket is bound into a container",
        rationale: "Whoever talks to the estiba, docker or podman socket can start a privileged container: it is the host's root.",
        remediation: "Do not bind engine sockets into containers.",
        automated: true,
        cis: &["5.32"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-005",
        target: TargetKind::Container,
        severity: Severity::Medium,
        title: "A container shares the host's network namespace",
        rationale: "--network host lets the container bind any host port and reach every local service.",
        remediation: "Use a network (estiba network create) and publish ports.",
        automated: true,
        cis: &["5.10"],
        owasp: &["D03"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-006",
        target: TargetKind::Container,
        severity: Severity::High,
        title: "A container shares the host's process namespace",
        rationale: "--pid host lets the container see and signal every host process.",
        remediation: "Remove --pid host.",
        automated: true,
        cis: &["5.16"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-007",
        target: TargetKind::Container,
        severity: Severity::High,
        title: "A container shares the host's IPC namespace",
        rationale: "--ipc host exposes the host's shared memory and semaphores.",
        remediation: "Remove --ipc host.",
        automated: true,
        cis: &["5.17"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-008",
        target: TargetKind::Container,
        severity: Severity::Low,
        title: "A privileged host port is published",
        rationale: "Host ports below 1024 are the host's services' ports.",
        remediation: "Publish on a port of 1024 or above.",
        automated: true,
        cis: &["5.8"],
        owasp: &["D03"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-009",
        target: TargetKind::Container,
        severity: Severity::Low,
        title: "A published port listens on every host interface",
        rationale: "0.0.0.0 makes the port reachable from every network the host is on.",
        remediation: "Publish on one address: -p 127.0.0.1:8080:80.",
        automated: true,
        cis: &["5.14"],
        owasp: &["D03"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-010",
        target: TargetKind::Container,
        severity: Severity::Medium,
        title: "A container has no memory limit",
        rationale: "Without --memory one container can take the host's memory.",
        remediation: "Set --memory.",
        automated: true,
        cis: &["5.11"],
        owasp: &["D07"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-011",
        target: TargetKind::Container,
        severity: Severity::Low,
        title: "A container has no CPU limit or shares",
        rationale: "Without --cpus or --cpu-shares one container can starve the others.",
        remediation: "Set --cpus or --cpu-shares.",
        automated: true,
        cis: &["5.12"],
        owasp: &["D07"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-012",
        target: TargetKind::Container,
        severity: Severity::Low,
        title: "A container has no pids limit",
        rationale: "Without --pids-limit a fork bomb takes the host's process table.",
        remediation: "Set --pids-limit.",
        automated: true,
        cis: &["5.29"],
        owasp: &["D07"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-013",
        target: TargetKind::Container,
        severity: Severity::Low,
        title: "A container's root file system is writable",
        rationale: "A writable root lets an attacker change the application's own files.",
        remediation: "Run with --read-only and mount volumes where writes belong.",
        automated: true,
        cis: &["5.13"],
        owasp: &["D09"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-014",
        target: TargetKind::Container,
        severity: Severity::Medium,
        title: "Host devices are exposed to a container",
        rationale: "A host device node gives the container the kernel driver behind it.",
        remediation: "Remove --device unless the container needs it.",
        automated: true,
        cis: &["5.18"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-015",
        target: TargetKind::Container,
        severity: Severity::High,
        title: "A container runs without seccomp",
        rationale: "seccomp=unconfined opens every system call, including the ones breakouts use.",
        remediation: "Remove seccomp=unconfined, or give a profile.",
        automated: true,
        cis: &["5.22"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-016",
        target: TargetKind::Container,
        severity: Severity::Medium,
        title: "A container may gain new privileges",
        rationale: "Without no-new-privileges, setuid binaries inside can raise the process's privileges.",
        remediation: "Keep estiba's default, no-new-privileges.",
        automated: true,
        cis: &["5.26"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-017",
        target: TargetKind::Container,
        severity: Severity::Low,
        title: "A container has no health check",
        rationale: "Without one a hung process looks healthy.",
        remediation: "Set --health-cmd, or a HEALTHCHECK in the image.",
        automated: true,
        cis: &["5.27"],
        owasp: NONE,
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-018",
        target: TargetKind::Container,
        severity: Severity::Medium,
        title: "A container runs as root",
        rationale: "uid 0 inside is uid 0 on the host unless user namespaces map it away.",
        remediation: "Run with --user, or an image with an unprivileged USER; run rootless.",
        automated: true,
        cis: &["4.1"],
        owasp: &["D01"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-019",
        target: TargetKind::Container,
        severity: Severity::Medium,
        title: "sshd runs in a container",
        rationale: "An SSH server is a second way in that bypasses exec and its audit trail.",
        remediation: "Remove sshd; use estiba exec.",
        automated: true,
        cis: &["5.7"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-C-020",
        target: TargetKind::Container,
        severity: Severity::Low,
        title: "A container restarts without limit",
        rationale: "always, unless-stopped and unbounded on-failure hide crash loops and keep a compromised process coming back.",
        remediation: "Use --restart on-failure:5.",
        automated: true,
        cis: &["5.15"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    // Task definitions.
    Rule {
        id: "ESB-T-001",
        target: TargetKind::TaskDefinition,
        severity: Severity::Critical,
        title: "A container is privileged",
        rationale: "privileged gives every capability and every device: it is the host's root.",
        remediation: "Remove privileged; add only the capabilities the container needs.",
        automated: true,
        cis: &["5.5"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-002",
        target: TargetKind::TaskDefinition,
        severity: Severity::High,
        title: "A container runs as root with the host's network",
        rationale: "Under host networking there is no network namespace between a root \
                    process and the host's interfaces.",
        remediation: "Set user to an unprivileged uid, or use awsvpc or bridge networking.",
        automated: true,
        cis: &["4.1", "5.10"],
        owasp: &["D01"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-003",
        target: TargetKind::TaskDefinition,
        severity: Severity::Low,
        title: "A container's root file system is writable",
        rationale: "A writable root lets an attacker change the application's own files.",
        remediation: "Set readonlyRootFilesystem to true and mount volumes where writes belong.",
        automated: true,
        cis: &["5.13"],
        owasp: &["D09"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-004",
        target: TargetKind::TaskDefinition,
        severity: Severity::High,
        title: "A container adds capabilities beyond the default set",
        rationale: "Capabilities such as SYS_ADMIN, NET_ADMIN or SYS_PTRACE reach past the \
                    container's own namespaces.",
        remediation:
            "Remove linuxParameters.capabilities.add entries the container can do without.",
        automated: true,
        cis: &["5.4"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-005",
        target: TargetKind::TaskDefinition,
        severity: Severity::High,
        title: "A host volume exposes a sensitive host directory",
        rationale: "/, /boot, /dev, /etc, /lib, /proc, /sys and /usr from the host let a \
                    container read or change the host itself.",
        remediation: "Mount only application directories from the host, or use volumes.",
        automated: true,
        cis: &["5.6"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-006",
        target: TargetKind::TaskDefinition,
        severity: Severity::Critical,
        title: "A host volume exposes a container engine's socket",
        rationale: "Whoever talks to the estiba, docker or podman socket can start a \
                    privileged container: it is the host's root.",
        remediation: "Do not mount engine sockets into tasks.",
        automated: true,
        cis: &["5.32"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-007",
        target: TargetKind::TaskDefinition,
        severity: Severity::High,
        title: "The task shares the host's process namespace",
        rationale: "pidMode host lets the containers see and signal every host process.",
        remediation: "Remove pidMode, or use task.",
        automated: true,
        cis: &["5.16"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-008",
        target: TargetKind::TaskDefinition,
        severity: Severity::High,
        title: "The task shares the host's IPC namespace",
        rationale: "ipcMode host exposes the host's shared memory and semaphores.",
        remediation: "Remove ipcMode, or use task or none.",
        automated: true,
        cis: &["5.17"],
        owasp: &["D04"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-009",
        target: TargetKind::TaskDefinition,
        severity: Severity::Medium,
        title: "The task uses the host's network",
        rationale: "networkMode host removes the network namespace: the containers can bind \
                    any host port and reach every local service.",
        remediation: "Use awsvpc or bridge.",
        automated: true,
        cis: &["5.10"],
        owasp: &["D03"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-010",
        target: TargetKind::TaskDefinition,
        severity: Severity::Medium,
        title: "A container has no hard memory limit",
        rationale: "memoryReservation alone is a soft limit: without memory on the container \
                    or the task, one container can take the node's memory.",
        remediation: "Set memory on the container, or on the task.",
        automated: true,
        cis: &["5.11"],
        owasp: &["D07"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-011",
        target: TargetKind::TaskDefinition,
        severity: Severity::Low,
        title: "An essential container has no health check",
        rationale: "Services count it healthy after a fixed wait, whether it works or not.",
        remediation: "Add a healthCheck command.",
        automated: true,
        cis: &["5.27", "4.6"],
        owasp: NONE,
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-012",
        target: TargetKind::TaskDefinition,
        severity: Severity::Critical,
        title: "A secret is written in plain text in environment",
        rationale: "environment values are readable by anyone who can describe the task \
                    definition; names like PASSWORD or TOKEN, and values shaped like AWS \
                    keys, are secrets.",
        remediation: "Move the value to the cluster's secrets and reference it from secrets.",
        automated: true,
        cis: &["4.10", "7.4"],
        owasp: &["D06"],
        dockle: NONE,
        trivy: &["AWS-0036"],
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-013",
        target: TargetKind::TaskDefinition,
        severity: Severity::Low,
        title: "An image is named by tag rather than digest",
        rationale: "A tag can be moved after the task definition was reviewed.",
        remediation: "Reference images as name@sha256:….",
        automated: true,
        cis: &["5.28"],
        owasp: &["D08"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
    Rule {
        id: "ESB-T-014",
        target: TargetKind::TaskDefinition,
        severity: Severity::High,
        title: "An image comes from a registry that is not trusted",
        rationale: "Only registries named as trusted are known to hold reviewed images.",
        remediation: "Mirror the image into a trusted registry, or trust the registry.",
        automated: true,
        cis: &["4.2"],
        owasp: &["D08"],
        dockle: NONE,
        trivy: NONE,
        hadolint: &["DL3026"],
    },
    Rule {
        id: "ESB-T-015",
        target: TargetKind::TaskDefinition,
        severity: Severity::Low,
        title: "A container has no logConfiguration",
        rationale: "Without a log driver its output stays on the node and is lost with it.",
        remediation: "Set logConfiguration (awslogs, or estiba's default driver explicitly).",
        automated: true,
        cis: &["2.13"],
        owasp: &["D10"],
        dockle: NONE,
        trivy: NONE,
        hadolint: NONE,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_shaped() {
        let mut seen = std::collections::HashSet::new();
        for r in RULES {
            assert!(seen.insert(r.id), "{} twice", r.id);
            let letter = match r.target {
                TargetKind::Containerfile => "F",
                TargetKind::Image => "I",
                TargetKind::TaskDefinition => "T",
                TargetKind::Container => "C",
            };
            assert!(r.id.starts_with(&format!("ESB-{letter}-")), "{}", r.id);
            assert!(!r.title.is_empty() && !r.remediation.is_empty());
            assert!(r
                .cis
                .iter()
                .all(|c| c.chars().all(|ch| ch.is_ascii_digit() || ch == '.')));
            assert!(r.owasp.iter().all(|o| o.len() == 3 && o.starts_with('D')));
        }
    }

    #[test]
    fn references_name_rules() {
        let privileged: Vec<&str> = resolve("cis:5.5").unwrap().iter().map(|r| r.id).collect();
        assert_eq!(privileged, ["ESB-C-001", "ESB-T-001"]);
        assert!(resolve("dockle:cis-di-0001")
            .unwrap()
            .iter()
            .any(|r| r.id == "ESB-I-001"));
        assert_eq!(resolve("ESB-F-002").unwrap().len(), 1);
        assert!(resolve("cis:4.1").unwrap().len() >= 3);
        assert!(matches!(
            resolve("cis:99.9"),
            Err(crate::Error::UnknownRule(_))
        ));
        assert!(resolve("nosuch:1").is_err());
    }
}
