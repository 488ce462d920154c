//! Tiny `archive` delivery packages: a tar.gz with `scomo-package.toml` and
//! one folder per component. Each component holds `VERSION`, a marker file
//! named after its version (so that files of two versions cannot pass for
//! one), optionally an incompressible blob (so that the download takes
//! several reads), and hooks that keep an `ACTIVE` marker in the component
//! directory.

use std::collections::BTreeSet;

/// One component of a package.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Comp {
    pub(crate) id: &'static str,
    pub(crate) version: &'static str,
    /// Bytes of incompressible data in `blob` (0: no blob).
    pub(crate) blob: usize,
}

pub(crate) const fn comp(id: &'static str, version: &'static str) -> Comp {
    Comp {
        id,
        version,
        blob: 0,
    }
}

impl Comp {
    pub(crate) const fn with_blob(mut self, bytes: usize) -> Comp {
        self.blob = bytes;
        self
    }

    fn marker(&self) -> String {
        format!("only-{}", self.version)
    }

    /// The files (relative paths) an installed component must hold, and
    /// nothing else.
    pub(crate) fn files(&self, active: bool) -> BTreeSet<String> {
        let mut f: BTreeSet<String> = [
            "VERSION".to_owned(),
            "hooks/activate".to_owned(),
            "hooks/deactivate".to_owned(),
            self.marker(),
        ]
        .into();
        if self.blob > 0 {
            f.insert("blob".into());
        }
        if active {
            f.insert("ACTIVE".into());
        }
        f
    }
}

const ACTIVATE: &str = "#!/bin/sh\ntouch ACTIVE\n";
const DEACTIVATE: &str = "#!/bin/sh\nrm -f ACTIVE\n";

fn manifest(pkg_id: &str, comps: &[Comp]) -> String {
    let mut m = format!(
        "[package]\nid = \"{pkg_id}\"\nname = \"Package {pkg_id}\"\nenv_type = \"archive\"\n"
    );
    for c in comps {
        m.push_str(&format!(
            "[[component]]\nid = \"{id}\"\nname = \"Component {id}\"\nversion = \"{v}\"\ndir = \"{id}\"\nactivate = \"hooks/activate\"\ndeactivate = \"hooks/deactivate\"\n",
            id = c.id,
            v = c.version
        ));
    }
    m
}

/// Incompressible bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The package as tar.gz bytes.
pub(crate) fn package(pkg_id: &str, comps: &[Comp]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut file = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    };
    file(
        "scomo-package.toml",
        manifest(pkg_id, comps).as_bytes(),
        0o644,
    );
    for (i, c) in comps.iter().enumerate() {
        file(&format!("{}/VERSION", c.id), c.version.as_bytes(), 0o644);
        file(&format!("{}/{}", c.id, c.marker()), b"", 0o644);
        file(
            &format!("{}/hooks/activate", c.id),
            ACTIVATE.as_bytes(),
            0o755,
        );
        file(
            &format!("{}/hooks/deactivate", c.id),
            DEACTIVATE.as_bytes(),
            0o755,
        );
        if c.blob > 0 {
            file(
                &format!("{}/blob", c.id),
                &noise(c.blob, i as u64 + 7),
                0o644,
            );
        }
    }
    b.into_inner().unwrap().finish().unwrap()
}
