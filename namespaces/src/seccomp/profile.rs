//! The OCI `linux.seccomp` object, deserializable from a config.json.
//!
//! Actions, operators, architectures and flags stay strings here: what they
//! mean is checked when the profile is compiled, where an unknown one is a
//! typed [`SeccompError`](super::SeccompError) instead of a parse failure.

use serde::{Deserialize, Deserializer};

/// A JSON `null` (what Go writes for an empty slice) as the default.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A seccomp profile, as in the OCI runtime spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// What happens to a syscall no rule matches (`SCMP_ACT_ERRNO`, ...).
    pub default_action: String,
    /// The errno of a default `SCMP_ACT_ERRNO` or `SCMP_ACT_TRACE` action
    /// (default: `EPERM`).
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    /// Architectures the filter accepts besides the native one
    /// (`SCMP_ARCH_X86_64`, `SCMP_ARCH_X86`, ...).
    #[serde(default, deserialize_with = "null_as_default")]
    pub architectures: Vec<String>,
    /// Flags for `seccomp(2)` (`SECCOMP_FILTER_FLAG_LOG`, ...).
    #[serde(default, deserialize_with = "null_as_default")]
    pub flags: Vec<String>,
    /// The rules, in order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub syscalls: Vec<Rule>,
}

/// A rule: an action for some syscalls, optionally only when their
/// arguments match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The syscall names.
    #[serde(default, deserialize_with = "null_as_default")]
    pub names: Vec<String>,
    /// The action (`SCMP_ACT_ALLOW`, ...).
    pub action: String,
    /// The errno of an `SCMP_ACT_ERRNO` action (default: the profile's
    /// `defaultErrnoRet`, else `EPERM`).
    #[serde(default)]
    pub errno_ret: Option<u32>,
    /// Argument conditions, all of which must hold (conditions on the same
    /// argument index are alternatives instead, as in runc).
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<Arg>,
}

/// A condition on one syscall argument.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// The argument's index, 0 to 5.
    pub index: u32,
    /// The compared value; for `SCMP_CMP_MASKED_EQ`, the mask.
    pub value: u64,
    /// For `SCMP_CMP_MASKED_EQ`, the value the masked argument must equal.
    #[serde(default)]
    pub value_two: u64,
    /// The operator (`SCMP_CMP_EQ`, `SCMP_CMP_MASKED_EQ`, ...).
    pub op: String,
}
