//! `` `...` `` shell lines. The runner never runs a shell; it reads out of
//! them what packetdrill's scripts use them for, which is setting sysctls
//! before the test, and passes those to the host ([`ScriptHost::sysctl`]):
//!
//! * `sysctl [-q] [-e] [-w] name=value ...` (dotted or slashed names,
//!   quoted values, `$((a*b))` arithmetic);
//! * `echo value > /proc/sys/...` and `> /sys/module/M/parameters/P`
//!   (named `M.P`);
//! * packetdrill's `set_sysctls.py /proc/sys/...=value ...`;
//! * a `defaults.sh` (packetdrill's shared settings), read from the
//!   script's directory ([`RunnerConfig::script_dir`]) and read the same
//!   way;
//! * `tc qdisc add|replace dev tun0 root pfifo|fq`, passed to the host
//!   as the setting `qdisc` (`fq`: a host that paces, as Linux does
//!   under fq, paces; frames still go straight to the runner), or said to
//!   be a no-op if the host does not know it;
//! * no-ops, said so in the trace: `ip tcp_metrics flush` (no metrics
//!   cache), packetdrill's `/tmp/sysctl_restore_*.sh` (every script gets
//!   a fresh stack).
//!
//! A line with any other command, or a sysctl the host does not know, is
//! reported as skipped as before.

use super::*;

/// What one shell command means to the runner.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Sysctl(String, String),
    /// `tc qdisc ... root KIND`.
    Qdisc(&'static str),
    NoOp(&'static str),
    Include(String),
    Unknown(String),
}

/// `/proc/sys/net/ipv4/tcp_sack` -> `net.ipv4.tcp_sack`;
/// `/sys/module/tcp_cubic/parameters/hystart_detect` ->
/// `tcp_cubic.hystart_detect`.
fn sysctl_name(path: &str) -> Option<String> {
    if let Some(p) = path.strip_prefix("/proc/sys/") {
        return Some(p.replace('/', "."));
    }
    let p = path.strip_prefix("/sys/module/")?;
    let (module, param) = p.split_once("/parameters/")?;
    Some(format!("{module}.{param}"))
}

/// `$((15*1024*1024))` and plain text; products and sums of integers.
fn expand(word: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find("$((") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find("))")? + i;
        let expr = &rest[i + 3..end];
        let mut sum = 0i64;
        for term in expr.split('+') {
            let mut prod = 1i64;
            for f in term.split('*') {
                prod = prod.checked_mul(f.trim().parse().ok()?)?;
            }
            sum = sum.checked_add(prod)?;
        }
        out.push_str(&sum.to_string());
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    (!out.contains('$')).then_some(out)
}

/// Splits a command into words, honouring double and single quotes and
/// dropping redirections (`> /dev/null`, `2>&1`).
fn words(cmd: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in cmd.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, ' ' | '\t') => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return None;
    }
    if in_word {
        out.push(cur);
    }
    // Redirections: `>`, `2>&1`, `> /dev/null`, `>/dev/null`.
    let mut kept = Vec::new();
    let mut skip_next = false;
    for w in out {
        if skip_next {
            skip_next = false;
            continue;
        }
        if w == ">" || w == ">>" || w == "2>" {
            skip_next = true;
        } else if !(w.starts_with("2>") || w.starts_with(">/dev/null")) {
            kept.push(w);
        }
    }
    Some(kept)
}

/// The commands of a shell block, one per line (joining `\` continuations),
/// without comments.
fn commands(block: &str) -> Vec<String> {
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .map(|l| l.split_once('#').map_or(l, |(a, _)| a).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn action(cmd: &str) -> Vec<Action> {
    let unknown = || vec![Action::Unknown(cmd.to_string())];
    let Some(w) = words(cmd) else {
        return unknown();
    };
    let Some(prog) = w.first() else {
        return Vec::new();
    };
    let base = prog.rsplit('/').next().unwrap_or(prog);
    let settings = |args: &[String]| -> Vec<Action> {
        args.iter()
            .map(|a| match a.split_once('=') {
                Some((k, v)) => {
                    let name = if k.starts_with('/') {
                        sysctl_name(k)
                    } else {
                        Some(k.replace('/', "."))
                    };
                    match (name, expand(v)) {
                        (Some(n), Some(v)) => Action::Sysctl(n, v),
                        _ => Action::Unknown(cmd.to_string()),
                    }
                }
                None => Action::Unknown(cmd.to_string()),
            })
            .collect()
    };
    match base {
        "sysctl" => {
            let args: Vec<String> = w[1..].iter().filter(|a| !a.starts_with('-')).cloned().collect();
            if args.is_empty() {
                unknown()
            } else {
                settings(&args)
            }
        }
        "set_sysctls.py" => settings(&w[1..]),
        "echo" => match cmd.split_once('>') {
            Some((lhs, target)) => {
                let v = lhs.trim().trim_start_matches("echo").trim().trim_matches('"');
                match (sysctl_name(target.trim()), expand(v)) {
                    (Some(n), Some(v)) => vec![Action::Sysctl(n, v)],
                    _ => unknown(),
                }
            }
            None => unknown(),
        },
        "defaults.sh" if w.len() == 1 => vec![Action::Include(prog.clone())],
        "ip" if w.get(1).map(String::as_str) == Some("tcp_metrics") => {
            vec![Action::NoOp("no TCP metrics cache to flush")]
        }
        "tc" if w.len() == 7
            && w[1] == "qdisc"
            && (w[2] == "add" || w[2] == "replace")
            && w[3] == "dev"
            && w[5] == "root"
            && (w[6] == "pfifo" || w[6] == "fq") =>
        {
            vec![Action::Qdisc(if w[6] == "fq" { "fq" } else { "pfifo" })]
        }
        b if b.starts_with("sysctl_restore_") && b.ends_with(".sh") => {
            vec![Action::NoOp(
                "each script runs on a fresh stack: nothing to restore",
            )]
        }
        _ => unknown(),
    }
}

impl<H: ScriptHost> Runner<H> {
    /// A shell line: applies what it sets, or reports it skipped.
    pub(super) fn shell(&mut self, ev: &Event, block: &str) {
        let mut actions = Vec::new();
        for cmd in commands(block) {
            actions.extend(action(&cmd));
        }
        let mut done = Vec::new();
        let mut skip = None;
        let mut depth = 0;
        while let Some(a) = (!actions.is_empty()).then(|| actions.remove(0)) {
            match a {
                Action::Sysctl(name, value) => match self.host.sysctl(self.now_instant(), &name, &value) {
                    Sysctl::Applied => done.push(format!("sysctl {name}={value}")),
                    Sysctl::NoEffect(why) => {
                        done.push(format!("sysctl {name}={value} (no effect: {why})"));
                    }
                    Sysctl::Unknown => {
                        skip.get_or_insert(format!("sysctl {name}={value}: unknown to this host"));
                    }
                },
                Action::Qdisc(kind) => match self.host.sysctl(self.now_instant(), "qdisc", kind) {
                    Sysctl::Applied => done.push(format!("qdisc {kind}")),
                    Sysctl::NoEffect(why) => done.push(format!("qdisc {kind} (no effect: {why})")),
                    Sysctl::Unknown => done.push(format!(
                        "no-op: no qdisc {kind}: frames go straight to the runner"
                    )),
                },
                Action::NoOp(why) => done.push(format!("no-op: {why}")),
                Action::Include(path) => {
                    let text = self
                        .cfg
                        .script_dir
                        .as_ref()
                        .filter(|_| depth < 4)
                        .and_then(|d| std::fs::read_to_string(d.join(&path)).ok());
                    match text {
                        Some(text) => {
                            depth += 1;
                            done.push(format!("read {path}"));
                            let mut inner = Vec::new();
                            for cmd in commands(&text) {
                                inner.extend(action(&cmd));
                            }
                            inner.append(&mut actions);
                            actions = inner;
                        }
                        None => {
                            skip.get_or_insert(format!("{path}: cannot read it"));
                        }
                    }
                }
                Action::Unknown(cmd) => {
                    skip.get_or_insert(format!("'{cmd}': not a command the runner understands"));
                }
            }
        }
        for d in done {
            self.trace
                .push(format!("{} shell (line {}): {d}", secs(self.now), ev.line));
        }
        if let Some(why) = skip {
            self.warnings
                .push((ev.line, format!("shell line skipped: {why}")));
            self.record_skipped(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sysctls_out_of_shell_lines() {
        assert_eq!(
            action("sysctl -q net.ipv4.tcp_rmem=\"4096 540000 $((15*1024*1024))\""),
            vec![Action::Sysctl(
                "net.ipv4.tcp_rmem".into(),
                "4096 540000 15728640".into()
            )]
        );
        assert_eq!(
            action("sysctl -q net.ipv4.tcp_early_retrans=4 net.ipv4.tcp_recovery=1"),
            vec![
                Action::Sysctl("net.ipv4.tcp_early_retrans".into(), "4".into()),
                Action::Sysctl("net.ipv4.tcp_recovery".into(), "1".into())
            ]
        );
        assert_eq!(
            action("sysctl -q net.ipv4.tcp_notsent_lowat=4294967295 > /dev/null 2>&1"),
            vec![Action::Sysctl(
                "net.ipv4.tcp_notsent_lowat".into(),
                "4294967295".into()
            )]
        );
        assert_eq!(
            action("sysctl -q net/ipv4/tcp_pacing_ss_ratio=200"),
            vec![Action::Sysctl(
                "net.ipv4.tcp_pacing_ss_ratio".into(),
                "200".into()
            )]
        );
        assert_eq!(
            action("echo 3 > /sys/module/tcp_cubic/parameters/hystart_detect"),
            vec![Action::Sysctl("tcp_cubic.hystart_detect".into(), "3".into())]
        );
        let block = "../common/defaults.sh\n../common/set_sysctls.py /proc/sys/net/ipv4/tcp_slow_start_after_idle=1 \\\n\t\t\t /proc/sys/net/ipv4/tcp_min_tso_segs=10";
        let acts: Vec<Action> = commands(block).iter().flat_map(|c| action(c)).collect();
        assert_eq!(
            acts,
            vec![
                Action::Include("../common/defaults.sh".into()),
                Action::Sysctl("net.ipv4.tcp_slow_start_after_idle".into(), "1".into()),
                Action::Sysctl("net.ipv4.tcp_min_tso_segs".into(), "10".into()),
            ]
        );
        assert_eq!(
            action("tc qdisc replace dev tun0 root fq"),
            vec![Action::Qdisc("fq")]
        );
        assert_eq!(
            action("tc qdisc add dev tun0 root pfifo"),
            vec![Action::Qdisc("pfifo")]
        );
        assert!(matches!(
            action("ip tcp_metrics flush all > /dev/null 2>&1")[0],
            Action::NoOp(_)
        ));
        assert!(matches!(
            action("/tmp/sysctl_restore_${PPID}.sh")[0],
            Action::NoOp(_)
        ));
        // A qdisc that drops everything cannot be emulated by ignoring it.
        assert!(matches!(
            action("tc qdisc replace dev tun0 root pfifo limit 0")[0],
            Action::Unknown(_)
        ));
        assert!(matches!(action("rm -rf /tmp/x")[0], Action::Unknown(_)));
        assert_eq!(
            commands("#!/bin/bash\n# c\n\nsysctl -q a=1 # why\n"),
            vec!["sysctl -q a=1"]
        );
    }
}
