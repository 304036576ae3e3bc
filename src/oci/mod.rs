//! OCI bundles: a bundle's `config.json` in (parsed with `oci-spec`,
//! converted to the [`Container`](crate::Container) builder: one code path
//! with the rest of the facade) and out (a [`Profile`](crate::profile::Profile)
//! and a few process settings written as a config.json that runc and crun
//! run unchanged).
//!
//! - [`OciConfig::from_bytes`]: the entry point for untrusted bytes (the
//!   fuzz target's). It keeps the document as it came
//!   ([`OciConfig::raw`], so [`OciConfig::to_vec`] round-trips without
//!   loss, unknown fields included) beside the typed `oci_spec` value, and
//!   turns an unknown capability name into a [`Warning`], as runc does,
//!   instead of failing the parse as `oci-spec` alone would.
//! - [`OciConfig::to_container`]: every field runc honours on Linux is
//!   either honoured (by the builder, or returned as data in [`Converted`]
//!   for the runtime to apply: hooks, the console size, the OOM score, the
//!   cgroup path) or refused with [`Error::Unsupported`] naming the field
//!   (`linux.uidMappings`, `process.apparmorProfile`, ...). Fields this
//!   version of the spec does not define are kept and reported as
//!   warnings.
//! - [`bundle::write_bundle`]: the reverse.
//! - [`features::features`]: the runtime-spec features document of what
//!   the conversion honours.

pub mod bundle;
mod convert;
mod error;
pub mod features;
mod fields;

use std::path::Path;

pub use convert::Converted;
pub use error::{Error, Result, Warning};

/// Parse and convert untrusted config.json bytes in one call (the fuzz
/// target's entry point): [`OciConfig::from_bytes`], then
/// [`OciConfig::to_container`] with the rootfs relative to `bundle`.
pub fn convert_bytes(bytes: &[u8], bundle: &Path) -> Result<Converted> {
    OciConfig::from_bytes(bytes)?.to_container(bundle)
}

/// The five capability sets of a runtime-spec `process` object (a
/// config's `process`, or an exec's `process.json`); a missing set is
/// empty. Unknown names are left out with a warning each, as runc does,
/// and so are ambient names the kernel cannot raise (outside permitted or
/// inheritable);
/// a set that is not an array of strings is [`Error::Invalid`]. `None`
/// when the object has no `capabilities`.
pub fn process_capabilities(
    process: &serde_json::Value,
) -> Result<Option<(crate::container::CapabilitySets, Vec<Warning>)>> {
    let caps = match process.get("capabilities") {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Object(caps)) => caps,
        Some(_) => {
            return Err(Error::Invalid {
                field: "process.capabilities".into(),
                reason: "not an object".into(),
            });
        }
    };
    let mut warnings = Vec::new();
    let mut sets = crate::container::CapabilitySets::default();
    for set in CAP_SETS {
        let field = || format!("process.capabilities.{set}");
        let list = match caps.get(set) {
            None | Some(serde_json::Value::Null) => continue,
            Some(serde_json::Value::Array(list)) => list,
            Some(_) => {
                return Err(Error::Invalid {
                    field: field(),
                    reason: "not an array".into(),
                });
            }
        };
        let mut names = Vec::new();
        for (i, name) in list.iter().enumerate() {
            let name = name.as_str().ok_or_else(|| Error::Invalid {
                field: format!("{}[{i}]", field()),
                reason: "not a string".into(),
            })?;
            if dunnage_namespaces::caps::capability_number(name).is_some() {
                names.push(name.to_string());
            } else {
                warnings.push(Warning::UnknownCapability {
                    set,
                    name: name.to_string(),
                });
            }
        }
        *match set {
            "bounding" => &mut sets.bounding,
            "effective" => &mut sets.effective,
            "permitted" => &mut sets.permitted,
            "inheritable" => &mut sets.inheritable,
            _ => &mut sets.ambient,
        } = names;
    }
    let (permitted, inheritable) = (&sets.permitted, &sets.inheritable);
    sets.ambient.retain(|name| {
        let missing_from = if !permitted.contains(name) {
            "permitted"
        } else if !inheritable.contains(name) {
            "inheritable"
        } else {
            return true;
        };
        warnings.push(Warning::AmbientNotRaised {
            name: name.clone(),
            missing_from,
        });
        false
    });
    Ok(Some((sets, warnings)))
}

/// A parsed config.json.
#[derive(Clone, Debug)]
pub struct OciConfig {
    raw: serde_json::Value,
    spec: oci_spec::runtime::Spec,
    warnings: Vec<Warning>,
}

/// The capability sets of `process.capabilities`.
const CAP_SETS: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

impl OciConfig {
    /// Parse a config.json from its bytes. Malformed JSON, a document that
    /// is not an object and values of the wrong type are typed errors;
    /// unknown capability names are dropped from the typed value with a
    /// warning (the raw document keeps them).
    pub fn from_bytes(bytes: &[u8]) -> Result<OciConfig> {
        let raw: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::Json {
            op: "parse config.json",
            reason: e.to_string(),
        })?;
        if !raw.is_object() {
            return Err(Error::Invalid {
                field: "config.json".into(),
                reason: "not a JSON object".into(),
            });
        }
        let mut warnings = Vec::new();
        let to_spec = |e: serde_json::Error| Error::Json {
            op: "convert config.json to the OCI runtime spec",
            reason: e.to_string(),
        };
        // The typed value is read from the parsed document in place; a copy
        // is made only when unknown capability names must be taken out.
        let spec: oci_spec::runtime::Spec = if has_unknown_caps(&raw) {
            let mut typed = raw.clone();
            strip_unknown_caps(&mut typed, &mut warnings);
            serde_json::from_value(typed).map_err(to_spec)?
        } else {
            serde::Deserialize::deserialize(&raw).map_err(to_spec)?
        };
        warnings.extend(fields::unknown_fields(&raw));
        Ok(OciConfig {
            raw,
            spec,
            warnings,
        })
    }

    /// Read `<bundle>/config.json`.
    pub fn load(bundle: &Path) -> Result<OciConfig> {
        let path = bundle.join("config.json");
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            op: "read",
            path,
            source,
        })?;
        OciConfig::from_bytes(&bytes)
    }

    /// The document as it was read, unknown fields included.
    pub fn raw(&self) -> &serde_json::Value {
        &self.raw
    }

    /// The typed value (without unknown capability names).
    pub fn spec(&self) -> &oci_spec::runtime::Spec {
        &self.spec
    }

    /// What parsing noticed without failing.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The document as JSON bytes: the same value that was read.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serializing a `Value` cannot fail (its keys are strings).
        serde_json::to_vec_pretty(&self.raw).unwrap_or_default()
    }

    /// The hooks, all six kinds, as data (for the runtime to run).
    pub fn hooks(&self) -> Option<&oci_spec::runtime::Hooks> {
        self.spec.hooks().as_ref()
    }
}

/// Whether a capability name `oci-spec` does not know is in the document.
fn has_unknown_caps(doc: &serde_json::Value) -> bool {
    let Some(caps) = doc
        .pointer("/process/capabilities")
        .and_then(|c| c.as_object())
    else {
        return false;
    };
    CAP_SETS
        .iter()
        .filter_map(|set| caps.get(*set).and_then(|l| l.as_array()))
        .flatten()
        .any(|name| name.is_string() && !known_cap(name))
}

/// Whether `oci-spec` knows the capability named by the JSON string `name`.
fn known_cap(name: &serde_json::Value) -> bool {
    <oci_spec::runtime::Capability as serde::Deserialize>::deserialize(name).is_ok()
}

/// Remove capability names `oci-spec` does not know (it would refuse the
/// whole document), with a warning each.
fn strip_unknown_caps(doc: &mut serde_json::Value, warnings: &mut Vec<Warning>) {
    let Some(caps) = doc
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return;
    };
    for set in CAP_SETS {
        let Some(list) = caps.get_mut(set).and_then(|l| l.as_array_mut()) else {
            continue;
        };
        list.retain(|name| {
            // Non-strings are left for oci-spec to refuse with a type error.
            let Some(s) = name.as_str() else { return true };
            let known = known_cap(name);
            if !known {
                warnings.push(Warning::UnknownCapability {
                    set,
                    name: s.to_string(),
                });
            }
            known
        });
    }
}

#[cfg(test)]
mod tests;
