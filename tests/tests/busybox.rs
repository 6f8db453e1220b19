//! Debian's static busybox (`/bin/busybox`, package busybox-static) in the guest.
//!
//! A few fixed expectations (echo, `sh -c 'exit 7'`, sort from stdin), then applets that
//! do file, text, archive and time work, each compared with the same command run
//! natively. Input files live in a scratch directory under `data/`: natively the command
//! runs with that directory as its working directory; in the guest each file is passed
//! with `--file HOST:/data/NAME` and the working directory is `/`, so the same relative
//! arguments name the same files on both sides.
//!
//! Busybox's `sh` runs non-builtin applets by fork+exec of /proc/self/exe: the
//! pipeline and script tests exercise Skiff's processes that way. Each file-changing
//! applet runs in its own boot and is judged by its exit status and messages.
//!
//! Besides status and stdout, the guest's stderr must contain the native stderr (busybox
//! error messages); Skiff may add its own lines around them.

use skiff_tests::{elf64_has_interpreter, guest, Guest, Outcome, Run, ScratchDir};

const BUSYBOX: &str = "/bin/busybox";

fn busybox() -> &'static str {
    let bytes = std::fs::read(BUSYBOX).unwrap_or_else(|e| {
        panic!("{BUSYBOX} is unreadable ({e}): install busybox-static (scripts/setup.sh)")
    });
    assert_eq!(
        elf64_has_interpreter(&bytes),
        Some(false),
        "{BUSYBOX} is not a static x86_64 ELF: install busybox-static"
    );
    BUSYBOX
}

fn guest_run(guest: &Guest, run: &Run) -> (Outcome, i32) {
    let outcome = run.guest(guest);
    let code = run
        .expect_finished(&outcome)
        .unwrap_or_else(|e| panic!("{e}"));
    (outcome, code)
}

#[test]
fn echo_hello() {
    let Some(guest) = guest() else { return };
    let run = Run::new(busybox()).args(["echo", "hello"]);
    let (outcome, code) = guest_run(&guest, &run);
    assert_eq!(
        code,
        0,
        "{}",
        run.failure("guest", "expected exit 0", &outcome)
    );
    assert_eq!(
        outcome.stdout,
        b"hello\n",
        "{}",
        run.failure("guest", "expected \"hello\\n\"", &outcome)
    );
}

#[test]
fn sh_exit_status_passes_through() {
    let Some(guest) = guest() else { return };
    let run = Run::new(busybox()).args(["sh", "-c", "exit 7"]);
    let (outcome, code) = guest_run(&guest, &run);
    assert_eq!(
        code,
        7,
        "{}",
        run.failure("guest", "expected exit 7", &outcome)
    );
}

#[test]
fn sort_reads_stdin() {
    let Some(guest) = guest() else { return };
    let run = Run::new(busybox()).arg("sort").stdin("b\na\n");
    let (outcome, code) = guest_run(&guest, &run);
    assert_eq!(
        code,
        0,
        "{}",
        run.failure("guest", "expected exit 0", &outcome)
    );
    assert_eq!(
        outcome.stdout,
        b"a\nb\n",
        "{}",
        run.failure("guest", "expected \"a\\nb\\n\"", &outcome)
    );
}

/// The input files, relative to the scratch directory (guest: relative to `/`).
fn fixture_files() -> Vec<(&'static str, Vec<u8>)> {
    let text = "The quick brown fox\njumps over the lazy dog.\n\nA fox is quick;\n\
                a dog is lazy.\nfoxes: 3\ndogs: 2\n";
    let words = "pear\napple\nfig\napple\nbanana\nfig\nfig\ncherry\n";
    let numbers = "10\n-3\n7\n250\n0\n42\n";
    let passwd = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:A User:/home/user:/bin/sh\n";
    let mut binary = Vec::new();
    for i in 0..20_000u32 {
        binary.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
    }
    vec![
        ("data/text.txt", text.as_bytes().to_vec()),
        ("data/words.txt", words.as_bytes().to_vec()),
        ("data/numbers.txt", numbers.as_bytes().to_vec()),
        ("data/passwd", passwd.as_bytes().to_vec()),
        ("data/binary.bin", binary),
        ("data/sub/nested.txt", b"nested file\n".to_vec()),
        ("data/sub/deeper/leaf.txt", b"leaf\n".to_vec()),
    ]
}

/// A scratch directory with the fixture files, plus `data/archive.tar` and
/// `data/text.txt.gz` made by the host's busybox.
fn fixture() -> ScratchDir {
    let scratch = ScratchDir::new("busybox");
    for (path, contents) in fixture_files() {
        scratch.write(path, contents);
    }
    let make = |args: &[&str]| {
        let status = std::process::Command::new(BUSYBOX)
            .args(args)
            .current_dir(scratch.path())
            .status()
            .expect("run host busybox");
        assert!(status.success(), "host busybox {args:?} failed: {status}");
    };
    make(&["mkdir", "-p", "staging/pkg/docs"]);
    std::fs::write(scratch.path().join("staging/pkg/README"), "read me\n").unwrap();
    std::fs::write(
        scratch.path().join("staging/pkg/docs/guide.txt"),
        "step 1\nstep 2\n",
    )
    .unwrap();
    make(&["tar", "-cf", "data/archive.tar", "-C", "staging", "pkg"]);
    let gz = std::process::Command::new(BUSYBOX)
        .args(["gzip", "-c", "data/text.txt"])
        .current_dir(scratch.path())
        .output()
        .expect("run host gzip");
    assert!(gz.status.success());
    scratch.write("data/text.txt.gz", gz.stdout);
    scratch
}

/// A busybox command to compare.
struct Command {
    args: &'static [&'static str],
    stdin: &'static str,
    /// Compare stdout as a sorted set of lines (output in directory order).
    sort_lines: bool,
}

const fn cmd(args: &'static [&'static str]) -> Command {
    Command {
        args,
        stdin: "",
        sort_lines: false,
    }
}

fn sorted_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    lines.sort();
    lines
}

/// Runs each command natively (fresh fixture) and in the guest (files passed with
/// `--file`), collecting every difference.
fn compare_all(commands: &[Command]) {
    let Some(guest) = guest() else { return };
    let mut failures = Vec::new();
    // The guest's input files come from a fixture nothing modifies; each native run gets
    // its own, since commands like rm and mv change their working directory.
    let guest_inputs = fixture();
    for command in commands {
        let native_dir = fixture();
        let mut run = Run::new(busybox())
            .args(command.args)
            .stdin(command.stdin)
            .native_cwd(native_dir.path());
        let mut inputs: Vec<String> = fixture_files().iter().map(|(p, _)| p.to_string()).collect();
        inputs.push("data/archive.tar".into());
        inputs.push("data/text.txt.gz".into());
        for relative in inputs {
            run = run.file(guest_inputs.path().join(&relative), &format!("/{relative}"));
        }
        let native = run.native();
        let guest_outcome = run.guest(&guest);
        if let Err(e) = run.expect_finished(&guest_outcome) {
            failures.push(e);
            continue;
        }
        let mut problems = Vec::new();
        if native.status_code() != guest_outcome.status_code() {
            problems.push(format!(
                "status: native {:?} vs guest {:?}",
                native.status_code(),
                guest_outcome.status_code()
            ));
        }
        let stdout_differs = if command.sort_lines {
            sorted_lines(&native.stdout) != sorted_lines(&guest_outcome.stdout)
        } else {
            native.stdout != guest_outcome.stdout
        };
        if stdout_differs {
            problems.push(format!(
                "stdout differs ({})",
                skiff_tests::first_difference(&native.stdout, &guest_outcome.stdout)
                    .unwrap_or_default()
            ));
        }
        let native_stderr = native.stderr_text();
        if !guest_outcome
            .stderr_text()
            .contains(native_stderr.trim_end())
        {
            problems.push(format!(
                "guest stderr lacks the native message {native_stderr:?}"
            ));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}\nnative stdout:\n{}\nnative stderr:\n{}\n{}",
                problems.join("; "),
                native.stdout_text(),
                native_stderr,
                run.failure(
                    "guest",
                    &format!("busybox {:?}", command.args),
                    &guest_outcome
                )
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} busybox commands differ:\n\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n\n")
    );
}

#[test]
fn text_applets_match_native() {
    compare_all(&[
        cmd(&["cat", "data/text.txt", "data/words.txt"]),
        cmd(&["wc", "data/text.txt", "data/words.txt"]),
        cmd(&["wc", "-l", "-w", "-c", "data/binary.bin"]),
        cmd(&["sort", "data/words.txt"]),
        cmd(&["sort", "-r", "-u", "data/words.txt"]),
        cmd(&["sort", "-n", "data/numbers.txt"]),
        cmd(&["uniq", "-c", "data/words.txt"]),
        cmd(&["head", "-n", "3", "data/text.txt"]),
        cmd(&["head", "-c", "100", "data/binary.bin"]),
        cmd(&["tail", "-n", "2", "data/text.txt"]),
        cmd(&["tail", "-c", "20", "data/text.txt"]),
        cmd(&["grep", "-n", "fox", "data/text.txt"]),
        cmd(&["grep", "-c", "-i", "the", "data/text.txt"]),
        cmd(&["grep", "-v", "-e", "fig", "data/words.txt"]),
        cmd(&["grep", "no-such-pattern", "data/text.txt"]),
        cmd(&["grep", "fox", "data/missing.txt"]),
        cmd(&["sed", "-e", "s/fox/cat/g", "-e", "/^$/d", "data/text.txt"]),
        cmd(&["sed", "-n", "2,4p", "data/text.txt"]),
        cmd(&[
            "awk",
            "{ s += $1 } END { print s, NR, s / NR }",
            "data/numbers.txt",
        ]),
        cmd(&[
            "awk",
            "-F:",
            "{ printf \"%s -> %s\\n\", $1, $6 }",
            "data/passwd",
        ]),
        cmd(&["sha256sum", "data/text.txt", "data/binary.bin"]),
        cmd(&["md5sum", "data/words.txt", "data/binary.bin"]),
        cmd(&["seq", "1", "5"]),
        cmd(&["seq", "10", "-3", "-5"]),
        cmd(&["date", "+%Y"]),
        cmd(&["ls", "data", "data/sub"]),
        cmd(&["ls", "-a", "data/sub/deeper"]),
        cmd(&["ls", "data/missing"]),
        Command {
            args: &["find", "data", "-name", "*.txt"],
            stdin: "",
            sort_lines: true,
        },
        Command {
            args: &["find", "data", "-type", "d"],
            stdin: "",
            sort_lines: true,
        },
        Command {
            args: &["sort", "-k2", "-t", " "],
            stdin: "x 3\ny 1\nz 2\n",
            sort_lines: false,
        },
    ]);
}

#[test]
fn archive_applets_match_native() {
    compare_all(&[
        cmd(&["tar", "-tf", "data/archive.tar"]),
        cmd(&["tar", "-xOf", "data/archive.tar"]),
        cmd(&["tar", "-xvf", "data/archive.tar", "-C", "data"]),
        cmd(&["gzip", "-c", "data/text.txt"]),
        cmd(&["gzip", "-c", "data/binary.bin"]),
        // Debian's busybox `zcat` forks a decompressor child; `gunzip -c` decompresses
        // in-process through the same code.
        cmd(&["zcat", "data/text.txt.gz"]),
        cmd(&["gunzip", "-c", "data/text.txt.gz"]),
        cmd(&["gzip", "data/words.txt"]),
        cmd(&["gunzip", "-t", "data/text.txt.gz"]),
    ]);
}

#[test]
fn file_applets_match_native() {
    compare_all(&[
        cmd(&["mkdir", "-p", "data/new/deeper/deepest"]),
        cmd(&["mkdir", "data"]),
        cmd(&["mkdir", "data/no/parent"]),
        cmd(&["cp", "data/text.txt", "data/copy.txt"]),
        cmd(&["cp", "-r", "data/sub", "data/sub-copy"]),
        cmd(&["cp", "data/missing.txt", "data/copy.txt"]),
        cmd(&["mv", "data/text.txt", "data/moved.txt"]),
        cmd(&["mv", "data/sub", "data/sub-moved"]),
        cmd(&["mv", "data/missing.txt", "data/x"]),
        cmd(&["rm", "data/text.txt"]),
        cmd(&["rm", "-r", "data/sub"]),
        cmd(&["rm", "data/missing.txt"]),
        cmd(&["rm", "-f", "data/missing.txt"]),
        cmd(&["rmdir", "data/sub"]),
    ]);
}

/// A script using builtins only: loops, arithmetic, tests, parameter expansion, case,
/// functions, `read` from stdin and from a redirected file.
const BUILTIN_SCRIPT: &str = r#"
for i in 1 2 3; do echo "item $i"; done
i=0
while [ $i -lt 5 ]; do i=$((i + 1)); printf '%d,' "$i"; done
echo
echo $((7 * 6)) $((100 / 7)) $((100 % 7)) $((1 << 10)) $((-5 + 2))
x=hello.tar.gz
echo "${#x} ${x%.gz} ${x%%.*} ${x#*.} ${x:-unset} ${nothing:-default}"
case $x in *.tar.gz) echo tarball ;; *) echo other ;; esac
test -f data/words.txt && echo "words exists"
[ -d data/sub ] && echo "sub is a dir"
[ -e data/missing ] || echo "missing is missing"
[ "abc" = "abc" ] && [ 3 -gt 2 ] && echo "comparisons work"
greet() { local who="$1"; echo "hi $who ($#)"; return 3; }
greet world extra
echo "greet returned $?"
set -- a b c
shift
echo "args now: $* ($#)"
n=0
while read -r line; do n=$((n + 1)); echo "stdin $n: <$line>"; done
count=0
while read -r word; do count=$((count + 1)); done < data/words.txt
echo "words: $count"
printf '%5s|%-5s|%03d|%x\n' ab cd 7 255
exit 5
"#;

#[test]
fn sh_builtins_match_native() {
    compare_all(&[
        Command {
            args: &["sh", "-c", BUILTIN_SCRIPT],
            stdin: "first line\n  second  \nthird",
            sort_lines: false,
        },
        cmd(&[
            "sh",
            "-c",
            "echo one; false; echo \"status $?\"; true && echo yes || echo no",
        ]),
        cmd(&["sh", "-c", "set -e; echo before; false; echo after"]),
        cmd(&["sh", "-c", "echo to-stderr >&2; exit 2"]),
    ]);
}

/// Shell constructs that fork without exec: subshells, command substitution, and a
/// pipeline of built-ins (each stage a forked copy of the shell), with their statuses.
const FORKING_SCRIPT: &str = r#"
( echo "in subshell"; exit 3 )
echo "subshell status $?"
x=$(echo captured; exit 4)
echo "substitution: $x, status $?"
v=outer
( v=inner; echo "subshell sees $v" )
echo "parent keeps $v"
echo piped | { read -r line; echo "read through a pipe: $line"; }
( :; exit 7 ) &
wait $!
echo "background job status $?"
for i in 1 2 3; do ( exit $i ); echo "loop $i -> $?"; done
"#;

/// Pipelines and scripts of applets: the shell forks a child per command, which
/// executes busybox again (`/proc/self/exe`) as the applet.
const APPLET_SCRIPT: &str = r#"
sort data/words.txt | uniq -c | sort -rn | head -n 3
seq 1 200 | grep 7 | wc -l
cat data/text.txt | tr a-z A-Z | md5sum
n=$(ls data | wc -l); echo "files in data: $n"
printf 'b
a
c
' > /tmp/unsorted; sort /tmp/unsorted; rm /tmp/unsorted
echo "exit of false: $(false; echo $?)"
busybox sh -c 'echo nested shell $#' one two
expr 6 \* 7
missing-applet-xyz 2>/dev/null; echo "missing: $?"
"#;

#[test]
fn sh_subshells_and_substitution_match_native() {
    compare_all(&[cmd(&["sh", "-c", FORKING_SCRIPT])]);
}

#[test]
fn sh_pipelines_of_applets_match_native() {
    compare_all(&[cmd(&["sh", "-c", APPLET_SCRIPT])]);
}
