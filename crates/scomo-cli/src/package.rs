//! `scomo package build DIR -o FILE`: a delivery package for the `archive`
//! execution environment — a reproducible tar.gz of DIR with its
//! `scomo-package.toml` manifest checked first.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use scomo::manifest::{Manifest, MANIFEST_FILE};
use sha2::{Digest, Sha256};

#[derive(Debug, Subcommand)]
pub(crate) enum PackageCommand {
    /// Build a tar.gz delivery package from a directory holding
    /// scomo-package.toml and the component folders it names.
    Build {
        /// The package directory.
        dir: PathBuf,
        /// Output file.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: PackageCommand) -> Result<()> {
    match cmd {
        PackageCommand::Build { dir, output, json } => {
            let built = build(&dir, &output)?;
            if json {
                println!(
                    "{{\"file\":{:?},\"pkg_id\":{:?},\"name\":{:?},\"env_type\":{:?},\"sha256\":{:?},\"size\":{},\"components\":{}}}",
                    output.display().to_string(),
                    built.manifest.package.id,
                    built.manifest.package.name,
                    built.manifest.package.env_type,
                    built.sha256,
                    built.size,
                    built.manifest.components.len()
                );
            } else {
                println!(
                    "built {}: {} ({} component{}), {} bytes, sha256 {}",
                    output.display(),
                    built.manifest.package.id,
                    built.manifest.components.len(),
                    if built.manifest.components.len() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    built.size,
                    built.sha256
                );
            }
            Ok(())
        }
    }
}

/// What `build` made.
pub(crate) struct Built {
    pub(crate) manifest: Manifest,
    pub(crate) sha256: String,
    pub(crate) size: u64,
}

/// Checks the manifest against the directory and writes the archive:
/// entries sorted, owners and times zeroed, so the same directory always
/// gives the same bytes (and the same SHA-256).
pub(crate) fn build(dir: &Path, output: &Path) -> Result<Built> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest =
        Manifest::parse(&text).with_context(|| format!("in {}", manifest_path.display()))?;
    for (i, c) in manifest.components.iter().enumerate() {
        let cdir = dir.join(&c.dir);
        if !cdir.is_dir() {
            bail!(
                "component[{i}].dir = {:?}: {} is not a directory",
                c.dir,
                cdir.display()
            );
        }
        for (name, hook) in [("activate", &c.activate), ("deactivate", &c.deactivate)] {
            if let Some(h) = hook {
                let p = cdir.join(h);
                if !p.is_file() {
                    bail!(
                        "component[{i}].{name} = {h:?}: {} is not a file",
                        p.display()
                    );
                }
                if !is_executable(&p)? {
                    bail!(
                        "component[{i}].{name} = {h:?}: {} is not executable (chmod +x)",
                        p.display()
                    );
                }
            }
        }
    }
    let mut files = Vec::new();
    collect(dir, Path::new(""), &mut files)?;
    files.sort();
    let out =
        File::create(output).with_context(|| format!("cannot create {}", output.display()))?;
    let gz = flate2::write::GzEncoder::new(BufWriter::new(out), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    for rel in &files {
        let path = dir.join(rel);
        tar.append_path_with_name(&path, rel)
            .with_context(|| format!("cannot add {} to the package", path.display()))?;
    }
    let gz = tar.into_inner().context("cannot finish the archive")?;
    let mut w = gz.finish().context("cannot finish the compression")?;
    w.flush().context("cannot write the package")?;
    drop(w);
    let (sha256, size) = sha256_file(output)?;
    Ok(Built {
        manifest,
        sha256,
        size,
    })
}

/// Every file and directory under `dir`, relative; symlinks are refused
/// (the agent refuses them too, and they make packages depend on the build
/// machine).
fn collect(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let here = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&here)
        .with_context(|| format!("cannot list {}", here.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", here.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = rel.join(e.file_name());
        let ty = e
            .file_type()
            .with_context(|| format!("cannot stat {}", name.display()))?;
        if ty.is_symlink() {
            bail!(
                "{} is a symbolic link; packages hold plain files only",
                root.join(&name).display()
            );
        }
        out.push(name.clone());
        if ty.is_dir() {
            collect(root, &name, out)?;
        }
    }
    Ok(())
}

fn is_executable(p: &Path) -> Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(p).with_context(|| format!("cannot stat {}", p.display()))?;
        Ok(meta.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = p;
        Ok(true)
    }
}

/// SHA-256 (hex) and size of a file, streamed.
pub(crate) fn sha256_file(p: &Path) -> Result<(String, u64)> {
    let mut f = File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", p.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(buf.get(..n).unwrap_or_default());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, size))
}
