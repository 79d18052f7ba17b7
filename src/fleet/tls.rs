//! `tls:`, the client-side certificate files for `mqtts://` brokers, and the one rule tying them
//! to the broker: fleetsim bundles no root certificates, so `mqtts://` needs a CA file.
//!
//! Only paths are checked and resolved here; the transport opens the files when it connects.
//! `tls:` without an `mqtts://` broker is fine: `--broker` may point the fleet at one.

use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

use super::model::{BrokerTarget, TlsFiles};
use super::raw::RawTls;
use super::values::Problems;

/// Check the paths; relative ones are resolved against `base` (the fleet file's directory)
/// when there is one, and kept as written (relative to the current directory) otherwise.
pub(super) fn check_tls(
    problems: &mut Problems,
    raw: Option<&Spanned<RawTls>>,
    base: Option<&Path>,
) -> TlsFiles {
    let Some(raw) = raw else {
        return TlsFiles::default();
    };
    let t = &raw.value;
    let mut path = |value: &Option<Spanned<String>>, name: &str| {
        let value = value.as_ref()?;
        let field = format!("tls.{name}");
        if value.value.is_empty() {
            problems.at(value.referenced, field, "path must not be empty");
            return None;
        }
        if value.value.contains('\0') {
            problems.at(value.referenced, field, "path contains a NUL character");
            return None;
        }
        Some(resolve(base, &value.value))
    };
    let files = TlsFiles {
        ca_file: path(&t.ca_file, "ca_file"),
        cert_file: path(&t.cert_file, "cert_file"),
        key_file: path(&t.key_file, "key_file"),
    };
    match (&t.cert_file, &t.key_file) {
        (Some(cert), None) => problems.at(
            cert.referenced,
            "tls.cert_file",
            "cert_file needs key_file too (the client certificate's private key)",
        ),
        (None, Some(key)) => problems.at(
            key.referenced,
            "tls.key_file",
            "key_file needs cert_file too (the client certificate it is the key of)",
        ),
        _ => {}
    }
    files
}

fn resolve(base: Option<&Path>, text: &str) -> PathBuf {
    let path = Path::new(text);
    match base {
        Some(base) => {
            let joined = base.join(path);
            // Lexical only (drops `.`, keeps `..` and symlinks, touches no file); it fails only
            // when the current directory is unknown, and then the joined path is as good.
            std::path::absolute(&joined).unwrap_or(joined)
        }
        None => path.to_path_buf(),
    }
}

/// `mqtts://` without `tls.ca_file`: reported at `tls` when it exists (it lacks the file),
/// else at the broker.
pub(super) fn check_ca_for(
    problems: &mut Problems,
    broker: Option<&BrokerTarget>,
    broker_loc: Location,
    raw: Option<&Spanned<RawTls>>,
) {
    let Some(BrokerTarget::External { tls: true, .. }) = broker else {
        return;
    };
    let (loc, field) = match raw {
        Some(t) if t.value.ca_file.is_some() => return,
        Some(t) => (t.referenced, "tls.ca_file"),
        None => (broker_loc, "broker"),
    };
    problems.at(
        loc,
        field,
        "mqtts:// needs tls.ca_file: fleetsim bundles no root certificates",
    );
}
