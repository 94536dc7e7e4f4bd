//! `proxsave generate-assets --out DIR` (hidden): the man pages and shell completions the
//! Debian package installs, generated from the same clap definitions the binary parses with,
//! so they cannot drift from the real options. Why a hidden command and not a build script:
//! docs/packaging.md.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::CmdResult;
use crate::cli::{Cli, GenerateAssetsArgs, VERSION};

/// The section appended to `proxsave(1)`: exit codes and the per-command pages.
fn main_page_extra(commands: &[String]) -> String {
    let mut s = String::from(
        ".SH \"EXIT STATUS\"\n\
         .TP\n0\nsuccess (also a restore that completed with warnings)\n\
         .TP\n1\nfailure, including a restore that completed with errors\n\
         .TP\n2\nusage error, a key or decision that is needed but was not given, or another \
         run holding the lock\n\
         .TP\n130\naborted by the user\n\
         .SH FILES\n\
         .TP\n/usr/share/doc/proxsave/\n\
         the documentation: README.md and docs/*.md (the command-line contract is cli.md)\n\
         .SH \"SEE ALSO\"\n",
    );
    let refs: Vec<String> = commands
        .iter()
        .map(|c| format!("\\fBproxsave\\-{}\\fR(1)", c.replace('-', "\\-")))
        .collect();
    s.push_str(&refs.join(",\n"));
    s.push('\n');
    s
}

/// `proxsave` as a user sees it: the clap definitions without hidden commands (clap_complete
/// would otherwise offer them), with the same top-level arguments and texts.
fn public_command() -> clap::Command {
    let full = Cli::command();
    let subcommands: Vec<clap::Command> = full
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut cmd = clap::Command::new("proxsave")
        .version(VERSION)
        .args(full.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(subcommands);
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    if let Some(about) = full.get_long_about() {
        cmd = cmd.long_about(about.clone());
    }
    cmd
}

fn write_man_pages(dir: &Path) -> anyhow::Result<Vec<String>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = public_command().disable_help_subcommand(true);
    cmd.build();
    let source = format!("proxsave {VERSION}");
    let manual = "proxsave manual";
    let mut names = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        names.push(sub.get_name().to_string());
        let man = clap_mangen::Man::new(sub.clone())
            .source(source.clone())
            .manual(manual);
        let path = dir.join(man.get_filename());
        let mut buf = Vec::new();
        man.render(&mut buf)?;
        buf.extend_from_slice(b".SH \"SEE ALSO\"\n\\fBproxsave\\fR(1)\n");
        fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let man = clap_mangen::Man::new(cmd).source(source).manual(manual);
    let path = dir.join(man.get_filename());
    let mut buf = Vec::new();
    man.render(&mut buf)?;
    buf.extend_from_slice(main_page_extra(&names).as_bytes());
    fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(names)
}

fn write_completions(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (shell, file) in [
        (Shell::Bash, "proxsave.bash"),
        (Shell::Zsh, "_proxsave"),
        (Shell::Fish, "proxsave.fish"),
    ] {
        let mut cmd = public_command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "proxsave", &mut buf);
        let path = dir.join(file);
        let mut f =
            fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(&buf)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Writes `DIR/man/proxsave.1`, `DIR/man/proxsave-<command>.1` for every command, and
/// `DIR/completions/{proxsave.bash,_proxsave,proxsave.fish}`; prints what it wrote.
pub fn run(args: GenerateAssetsArgs) -> CmdResult {
    let names = write_man_pages(&args.out.join("man"))?;
    write_completions(&args.out.join("completions"))?;
    println!(
        "wrote {} man pages and 3 completion scripts into {}",
        names.len() + 1,
        args.out.display()
    );
    Ok(())
}
