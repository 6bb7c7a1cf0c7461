//! Argument preprocessing in front of argh (known trap 13).
//!
//! argh neither accepts `--long=value` nor treats option-like values the way
//! upstream's cmdliner does, and the common options of the client would
//! otherwise be repeated in every subcommand. One pass here, driven by the
//! option tables argh derives (`ArgsInfo`):
//!
//! * splits `--long=value` at the first `=`; a value that begins with `-`
//!   (other than a lone `-`) is only accepted in that form, otherwise it is
//!   taken as the next option, as cmdliner does (`--mem -1` is an unknown
//!   option `-1`);
//! * expands short clusters (`-vv`, `-nfoo`);
//! * maps alias names (`--restart`) to the name argh knows;
//! * moves the common options into their own argument list;
//! * detects `--help` anywhere before `--`;
//! * emits the command's options first, then `--`, then the positional
//!   arguments, so argh never mistakes a positional (`-`, `help`) for
//!   anything else.
//!
//! Unambiguous prefixes of long options (which cmdliner accepts) are not
//! supported: an option is recognised by its full name only.

use argh::{CommandInfoWithArgs, FlagInfo, FlagInfoKind, FromArgs};

use super::error::CliError;

/// Where an option's tokens go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// To the subcommand's own argh struct.
    Own,
    /// To the common options struct.
    Common,
}

/// One option a command line may contain.
#[derive(Debug)]
struct OptSpec {
    long: &'static str,
    short: Option<char>,
    takes_value: bool,
    target: Target,
}

/// Everything the preprocessing needs to know about one command.
#[derive(Debug)]
pub struct Spec {
    opts: Vec<OptSpec>,
    aliases: &'static [(&'static str, &'static str)],
}

fn opt_spec(flag: &FlagInfo<'static>, target: Target) -> OptSpec {
    OptSpec {
        long: flag.long,
        short: flag.short,
        takes_value: matches!(flag.kind, FlagInfoKind::Option { .. }),
        target,
    }
}

impl Spec {
    /// The options of `own`, plus those of `common` whose long names are
    /// listed in `allowed_common`; `aliases` maps alias long names to the
    /// long names argh knows (both with their leading `--`).
    pub fn new(
        own: &CommandInfoWithArgs,
        common: &CommandInfoWithArgs,
        allowed_common: &[&str],
        aliases: &'static [(&'static str, &'static str)],
    ) -> Spec {
        let own_opts = own.flags.iter().map(|f| opt_spec(f, Target::Own));
        let common_opts = common
            .flags
            .iter()
            .filter(|f| allowed_common.contains(&f.long))
            .map(|f| opt_spec(f, Target::Common));
        let opts = own_opts
            .chain(common_opts)
            .filter(|o| o.long != "--help")
            .collect();
        Spec { opts, aliases }
    }

    fn long(&self, name: &str) -> Option<&OptSpec> {
        let name = self
            .aliases
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, canon)| canon);
        self.opts.iter().find(|o| o.long == name)
    }

    fn short(&self, c: char) -> Option<&OptSpec> {
        self.opts.iter().find(|o| o.short == Some(c))
    }

    fn is_known(&self, token: &str) -> bool {
        if let Some(long) = token.strip_prefix("--") {
            let name = long.split_once('=').map_or(long, |(n, _)| n);
            self.long(&format!("--{name}")).is_some()
        } else {
            token
                .chars()
                .nth(1)
                .is_some_and(|c| self.short(c).is_some())
        }
    }
}

/// The command line after preprocessing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Arguments for the subcommand's own argh struct.
    pub own: Vec<String>,
    /// Arguments for the common options struct.
    pub common: Vec<String>,
    /// Whether `--help` was given.
    pub help: bool,
}

/// Whether cmdliner would take `token` for an option.
fn looks_like_option(token: &str) -> bool {
    token.len() > 1 && token.starts_with('-')
}

fn unknown(token: &str) -> CliError {
    CliError::Usage(format!("unknown option '{token}'"))
}

/// Splits `args` (the arguments after the subcommand name) as described in
/// the module documentation.
pub fn split(spec: &Spec, args: &[String]) -> Result<Split, CliError> {
    let mut out = Split::default();
    let mut positionals = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            positionals.extend(rest.by_ref().cloned());
            break;
        }
        if arg == "--help" || arg.starts_with("--help=") {
            out.help = true;
            continue;
        }
        if !looks_like_option(arg) {
            positionals.push(arg.clone());
            continue;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (format!("--{name}"), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let opt = spec.long(&name).ok_or_else(|| unknown(&name))?;
            emit(
                spec,
                &mut out,
                opt,
                opt.long.to_string(),
                &name,
                inline,
                &mut rest,
            )?;
        } else {
            // A cluster of short options: switches, then possibly one option
            // whose value is the rest of the cluster or the next argument.
            for (i, c) in arg[1..].char_indices() {
                let shown = format!("-{c}");
                let opt = spec.short(c).ok_or_else(|| unknown(&shown))?;
                if opt.takes_value {
                    let glued = &arg[1 + i + c.len_utf8()..];
                    let inline = (!glued.is_empty()).then(|| glued.to_string());
                    emit(
                        spec,
                        &mut out,
                        opt,
                        shown.clone(),
                        &shown,
                        inline,
                        &mut rest,
                    )?;
                    break;
                }
                emit(spec, &mut out, opt, shown.clone(), &shown, None, &mut rest)?;
            }
        }
    }
    out.own.push("--".to_string());
    out.own.extend(positionals);
    Ok(out)
}

/// Appends one option (and its value) to the list it belongs to.
fn emit<'a>(
    spec: &Spec,
    out: &mut Split,
    opt: &OptSpec,
    canonical: String,
    shown: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<(), CliError> {
    let list = match opt.target {
        Target::Own => &mut out.own,
        Target::Common => &mut out.common,
    };
    if !opt.takes_value {
        if inline.is_some() {
            return Err(CliError::Usage(format!(
                "option '{shown}' cannot take an argument"
            )));
        }
        list.push(canonical);
        return Ok(());
    }
    let value = match inline {
        Some(value) => value,
        None => match rest.next() {
            Some(next) if looks_like_option(next) => {
                return Err(if spec.is_known(next) {
                    CliError::Usage(format!("option '{shown}' needs an argument"))
                } else {
                    unknown(next.split_once('=').map_or(next, |(n, _)| n))
                });
            }
            Some(next) => next.clone(),
            None => {
                return Err(CliError::Usage(format!(
                    "option '{shown}' needs an argument"
                )))
            }
        },
    };
    list.push(canonical);
    list.push(value);
    Ok(())
}

/// argh's error text as one line: its lines trimmed and joined by spaces.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// argh's help text for `T`, without trailing blank lines. argh lists
/// `help` as a help trigger too; here only `--help` is one (a positional
/// `help` is an ordinary argument, as with upstream's cmdliner).
pub fn argh_help<T: FromArgs>(cmd: &[&str]) -> String {
    let text = match T::from_args(cmd, &["--help"]) {
        Err(early) => early.output,
        Ok(_) => String::new(),
    };
    text.replace("--help, help      ", "--help            ")
        .trim_end()
        .to_string()
}

/// Width of the option column in help texts, as argh lays it out.
const NAME_COLUMN: usize = 20;
/// Where help lines are wrapped.
const WRAP: usize = 80;

/// A help section listing the `allowed` options of `info`, laid out like
/// argh's own "Options:" section.
pub fn options_section(title: &str, info: &CommandInfoWithArgs, allowed: &[&str]) -> String {
    let mut out = format!("{title}:\n");
    for flag in info
        .flags
        .iter()
        .filter(|f| allowed.contains(&f.long) && !f.hidden)
    {
        let mut name = String::new();
        if let Some(short) = flag.short {
            name.push_str(&format!("-{short}, "));
        }
        name.push_str(flag.long);
        if let FlagInfoKind::Option { arg_name } = flag.kind {
            name.push_str(&format!(" <{arg_name}>"));
        }
        push_entry(&mut out, &name, flag.description);
    }
    out
}

/// One help entry: the name in the first column, the description wrapped
/// in the second (starting on the next line when the name is too long).
pub fn push_entry(out: &mut String, name: &str, description: &str) {
    let indent = 2 + NAME_COLUMN;
    let mut line = format!("  {name}");
    if line.len() + 2 > indent {
        out.push_str(&line);
        out.push('\n');
        line.clear();
    }
    for word in description.split_whitespace() {
        if line.len() > indent && line.len() + 1 + word.len() > WRAP {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if line.len() < indent {
            line.push_str(&" ".repeat(indent - line.len()));
        } else {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use argh::{ArgsInfo, FromArgs};

    /// own options of a test command.
    #[derive(FromArgs, ArgsInfo, Debug)]
    struct Own {
        /// memory
        #[argh(option)]
        mem: Option<i64>,
        /// argument
        #[argh(option)]
        arg: Vec<String>,
        /// force
        #[argh(switch, short = 'f')]
        force: bool,
        /// restart
        #[argh(switch)]
        restart_on_fail: bool,
        /// name
        #[argh(option, short = 'n')]
        name: Option<String>,
        /// positionals
        #[argh(positional)]
        rest: Vec<String>,
    }

    /// common options of a test command.
    #[derive(FromArgs, ArgsInfo, Debug)]
    struct Common {
        /// socket
        #[argh(option)]
        socket: Option<String>,
        /// verbose
        #[argh(switch, short = 'v')]
        verbose: u8,
        /// quiet
        #[argh(switch, short = 'q')]
        quiet: bool,
    }

    const ALIASES: &[(&str, &str)] = &[("--restart", "--restart-on-fail")];

    fn run(args: &[&str]) -> Result<Split, String> {
        let spec = Spec::new(
            &Own::get_args_info(),
            &Common::get_args_info(),
            &["--socket", "--verbose", "--quiet"],
            ALIASES,
        );
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        split(&spec, &args).map_err(|e| e.to_string())
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn equals_form_and_common_extraction() {
        let s = run(&[
            "foo",
            "--mem=-1",
            "--socket",
            "-",
            "--arg=--ipv4=10.0.0.2/24",
            "bar",
        ])
        .unwrap();
        assert_eq!(
            s.own,
            v(&[
                "--mem",
                "-1",
                "--arg",
                "--ipv4=10.0.0.2/24",
                "--",
                "foo",
                "bar"
            ])
        );
        assert_eq!(s.common, v(&["--socket", "-"]));
        assert!(!s.help);
        // The value of --arg is never taken for a common option.
        let s = run(&["--arg=--socket"]).unwrap();
        assert_eq!(s.own, v(&["--arg", "--socket", "--"]));
        assert!(s.common.is_empty());
    }

    #[test]
    fn dash_values_need_the_equals_form() {
        assert_eq!(run(&["--mem", "-1"]).unwrap_err(), "unknown option '-1'");
        assert_eq!(run(&["--arg", "--x"]).unwrap_err(), "unknown option '--x'");
        assert_eq!(
            run(&["--mem", "--force"]).unwrap_err(),
            "option '--mem' needs an argument"
        );
        assert_eq!(
            run(&["--mem"]).unwrap_err(),
            "option '--mem' needs an argument"
        );
        assert_eq!(
            run(&["--force=yes"]).unwrap_err(),
            "option '--force' cannot take an argument"
        );
        assert_eq!(run(&["--bogus"]).unwrap_err(), "unknown option '--bogus'");
        assert_eq!(run(&["--bogus=1"]).unwrap_err(), "unknown option '--bogus'");
        assert_eq!(run(&["-5"]).unwrap_err(), "unknown option '-5'");
        // Prefixes are not expanded.
        assert_eq!(run(&["--me", "1"]).unwrap_err(), "unknown option '--me'");
    }

    #[test]
    fn lone_dash_and_positionals() {
        let s = run(&["-", "--socket", "-", "help"]).unwrap();
        assert_eq!(s.own, v(&["--", "-", "help"]));
        let s = run(&["a", "--", "--mem", "-f"]).unwrap();
        assert_eq!(s.own, v(&["--", "a", "--mem", "-f"]));
    }

    #[test]
    fn short_clusters_and_aliases() {
        let s = run(&["-vvq", "-fnfoo", "--restart"]).unwrap();
        assert_eq!(s.common, v(&["-v", "-v", "-q"]));
        assert_eq!(s.own, v(&["-f", "-n", "foo", "--restart-on-fail", "--"]));
        let s = run(&["-n", "-"]).unwrap();
        assert_eq!(s.own, v(&["-n", "-", "--"]));
        assert_eq!(run(&["-fx"]).unwrap_err(), "unknown option '-x'");
    }

    #[test]
    fn help_anywhere_before_double_dash() {
        assert!(run(&["foo", "--help"]).unwrap().help);
        assert!(run(&["--help=plain"]).unwrap().help);
        assert!(!run(&["--", "--help"]).unwrap().help);
    }

    #[test]
    fn argh_accepts_the_output() {
        let s = run(&[
            "x",
            "--mem=-1",
            "-fn",
            "Y",
            "--restart",
            "-vv",
            "--socket=-",
            "--arg=-a",
            "--",
            "-",
        ])
        .unwrap();
        let own: Vec<&str> = s.own.iter().map(String::as_str).collect();
        let parsed = Own::from_args(&["t"], &own).unwrap();
        assert_eq!(parsed.mem, Some(-1));
        assert!(parsed.force);
        assert!(parsed.restart_on_fail);
        let common: Vec<&str> = s.common.iter().map(String::as_str).collect();
        let common = Common::from_args(&["t"], &common).unwrap();
        assert_eq!(common.socket.as_deref(), Some("-"));
        assert_eq!(common.verbose, 2);
        assert!(!common.quiet);
        assert_eq!(parsed.name.as_deref(), Some("Y"));
        assert_eq!(parsed.arg, v(&["-a"]));
        assert_eq!(parsed.rest, v(&["x", "-"]));
    }

    #[test]
    fn error_lines() {
        assert_eq!(
            one_line("Required positional arguments not provided:\n    name\n"),
            "Required positional arguments not provided: name"
        );
    }
}
