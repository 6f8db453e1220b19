//! `skiff build`, `skiff inspect` and `skiff volume ...`: each returns skiff's exit
//! status (0, or 125 with one `skiff: ` line on stderr).

use std::io::{self, Write};
use std::path::PathBuf;

use crate::image::{self, BuildRequest};
use crate::initrd;
use crate::manifest::{self, MANIFEST_NAME};
use crate::options::{format_size, format_size_approx};
use crate::run;
use crate::session::say;
use crate::status::{status_for_signal, SIGPIPE, STATUS_SKIFF_FAILED};
use crate::volume::{self, Endpoint, Kind, Volume};
use crate::{BuildArgs, InspectArgs, VolumeCommand};

fn finish(result: Result<u8, String>) -> u8 {
    match result {
        Ok(status) => status,
        Err(message) => {
            say(&message);
            STATUS_SKIFF_FAILED
        }
    }
}

/// `skiff build [PATH] [-o DIR] [--kernel PATH]`.
pub fn build(args: BuildArgs) -> u8 {
    finish(build_image(args).map(|()| 0))
}

fn build_image(args: BuildArgs) -> Result<(), String> {
    let named = args.manifest.is_some();
    let arg = args
        .manifest
        .unwrap_or_else(|| PathBuf::from(MANIFEST_NAME));
    let path = manifest::manifest_path(&arg);
    if !path.exists() {
        return Err(if named {
            format!("{}: no such file or directory", path.display())
        } else {
            format!(
                "no {MANIFEST_NAME} in the current directory; write one (see skiff build --help) \
                 or name it: skiff build PATH"
            )
        });
    }
    let manifest = manifest::load(&path)?;
    let program = run::read_program(&manifest.program)
        .map_err(|f| format!("{}: [program] path: {}", path.display(), f.message))?;
    let kernel = run::find_kernel(args.kernel.as_deref())?;
    let request = BuildRequest {
        output: args.output,
        kernel,
        mtime: initrd::source_date_epoch(std::env::var_os(initrd::SOURCE_DATE_EPOCH))?,
    };
    let built = image::build(&request, &manifest, &program.bytes)?;
    for warning in &built.warnings {
        say(&format!("warning: {warning}"));
    }
    say(&format!(
        "built {}: kernel {}, initrd {} ({} entries)",
        built.dir.display(),
        format_size_approx(built.kernel_bytes),
        format_size_approx(built.initrd_bytes),
        built.entries
    ));
    Ok(())
}

/// `skiff inspect IMAGE`.
pub fn inspect(args: InspectArgs) -> u8 {
    let mut stdout = io::stdout().lock();
    finish(image::inspect(&args.image, &mut stdout).map(|()| 0))
}

/// `skiff volume ...`.
pub fn volume(command: VolumeCommand) -> u8 {
    finish(run_volume_command(command))
}

/// A writer that remembers whether its reader went away (so `cat | head` ends quietly).
struct PipeWatch<W: Write> {
    inner: W,
    broken: bool,
}

impl<W: Write> Write for PipeWatch<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.inner.write(buf);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::BrokenPipe) {
            self.broken = true;
        }
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::BrokenPipe) {
            self.broken = true;
        }
        result
    }
}

fn run_volume_command(command: VolumeCommand) -> Result<u8, String> {
    match command {
        VolumeCommand::Create {
            size,
            force,
            label,
            fat,
            file,
        } => {
            let options = volume::CreateOptions {
                force,
                label: label.as_deref().map(volume::parse_label).transpose()?,
                fat_type: fat,
            };
            let fat = volume::create(&file, size, options)?;
            println!(
                "{}: {} {} volume",
                file.display(),
                format_size(size),
                volume::fat_type_name(fat)
            );
            Ok(0)
        }
        VolumeCommand::Ls { file, path } => {
            let volume = Volume::open(&file, false)?;
            let entries = volume.list(&volume::path_components(&path)?)?;
            let width = entries
                .iter()
                .map(|e| match e.kind {
                    Kind::File { size } => size.to_string().len(),
                    Kind::Dir => 1,
                })
                .max()
                .unwrap_or(1);
            let mut text = String::new();
            for entry in &entries {
                let (kind, size, slash) = match entry.kind {
                    Kind::Dir => ('d', "-".to_string(), "/"),
                    Kind::File { size } => ('-', size.to_string(), ""),
                };
                text.push_str(&format!(
                    "{kind} {size:>width$} {} {}{slash}\n",
                    volume::show_date_time(entry.modified),
                    entry.name
                ));
            }
            write_stdout(text.as_bytes())
        }
        VolumeCommand::Cat { file, path } => {
            let volume = Volume::open(&file, false)?;
            let mut out = PipeWatch {
                inner: io::stdout().lock(),
                broken: false,
            };
            let result = volume
                .read_file(&volume::path_components(&path)?, &mut out)
                .and_then(|_| out.flush().map_err(|e| format!("writing the output: {e}")));
            match result {
                Ok(()) => Ok(0),
                Err(_) if out.broken => Ok(status_for_signal(SIGPIPE)),
                Err(e) => Err(e),
            }
        }
        VolumeCommand::Cp {
            recursive,
            source,
            dest,
        } => {
            match (
                volume::parse_endpoint(&source),
                volume::parse_endpoint(&dest),
            ) {
                (Endpoint::Host(source), Endpoint::Volume { image, path }) => {
                    let volume = Volume::open(&image, true)?;
                    let dest = volume::path_components(&path)?;
                    volume::copy_in(&volume, &source, &dest, recursive)?;
                    volume.close()?;
                }
                (Endpoint::Volume { image, path }, Endpoint::Host(dest)) => {
                    let volume = Volume::open(&image, false)?;
                    let source = volume::path_components(&path)?;
                    volume::copy_out(&volume, &source, &dest, recursive)?;
                }
                (Endpoint::Volume { .. }, Endpoint::Volume { .. }) => {
                    return Err(
                        "both SRC and DEST are on volumes; copy to the host and back".into(),
                    )
                }
                (Endpoint::Host(_), Endpoint::Host(_)) => return Err(
                    "neither SRC nor DEST is on a volume; write the volume side as VOLUME:/path"
                        .into(),
                ),
            }
            Ok(0)
        }
        VolumeCommand::Mkdir { file, paths } => {
            let volume = Volume::open(&file, true)?;
            for path in &paths {
                let components = volume::path_components(path)?;
                volume.make_dirs(&components)?;
            }
            volume.close()?;
            Ok(0)
        }
        VolumeCommand::Rm {
            recursive,
            file,
            paths,
        } => {
            let volume = Volume::open(&file, true)?;
            for path in &paths {
                volume.remove(&volume::path_components(path)?, recursive)?;
            }
            volume.close()?;
            Ok(0)
        }
        VolumeCommand::Info { file } => {
            let volume = Volume::open(&file, false)?;
            let size = std::fs::metadata(&file).map_or(0, |m| m.len());
            let mut text = format!("{:<13}{}\n", "file", file.display());
            text.push_str(&format!("{:<13}{}\n", "size", format_size(size)));
            for (key, value) in volume.info()? {
                text.push_str(&format!("{key:<13}{value}\n"));
            }
            write_stdout(text.as_bytes())
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<u8, String> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(status_for_signal(SIGPIPE)),
        Err(e) => Err(format!("writing the output: {e}")),
    }
}
