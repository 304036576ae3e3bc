//! Which config.json fields exist and what the conversion does with each:
//! one table, so that no field is ignored by omission.

use serde_json::Value;

use super::error::{Error, Result, Warning};

/// What the conversion does with a field.
#[derive(Clone, Copy)]
pub(super) enum Status {
    /// An object whose members the table lists.
    Object,
    /// Converted (and checked) by `convert`.
    Honoured,
    /// Refused when set to anything but an empty value, for this reason.
    Refused(&'static str),
}

use Status::{Honoured, Object, Refused};

const NO_MAC: &str = "this host has neither AppArmor nor SELinux";
const WINDOWS: &str = "a Windows field";
const NOT_YET: &str = "the Container builder does not have this knob";

/// Every field of the OCI runtime spec 1.2 for Linux, by JSON path.
pub(super) const FIELDS: &[(&str, Status)] = &[
    ("ociVersion", Honoured),
    ("root", Object),
    ("root.path", Honoured),
    ("root.readonly", Honoured),
    ("mounts", Honoured),
    ("process", Object),
    ("process.terminal", Honoured),
    ("process.consoleSize", Honoured),
    ("process.user", Object),
    ("process.user.uid", Honoured),
    ("process.user.gid", Honoured),
    ("process.user.umask", Honoured),
    ("process.user.additionalGids", Honoured),
    ("process.user.username", Refused(WINDOWS)),
    ("process.args", Honoured),
    ("process.commandLine", Refused(WINDOWS)),
    ("process.env", Honoured),
    ("process.cwd", Honoured),
    ("process.capabilities", Object),
    ("process.capabilities.bounding", Honoured),
    ("process.capabilities.effective", Honoured),
    ("process.capabilities.inheritable", Honoured),
    ("process.capabilities.permitted", Honoured),
    ("process.capabilities.ambient", Honoured),
    ("process.rlimits", Honoured),
    ("process.noNewPrivileges", Honoured),
    ("process.apparmorProfile", Refused(NO_MAC)),
    ("process.selinuxLabel", Refused(NO_MAC)),
    ("process.oomScoreAdj", Honoured),
    ("process.ioPriority", Refused(NOT_YET)),
    ("process.scheduler", Refused(NOT_YET)),
    ("process.execCPUAffinity", Refused(NOT_YET)),
    ("hostname", Honoured),
    ("domainname", Refused(NOT_YET)),
    ("hooks", Object),
    ("hooks.prestart", Honoured),
    ("hooks.createRuntime", Honoured),
    ("hooks.createContainer", Honoured),
    ("hooks.startContainer", Honoured),
    ("hooks.poststart", Honoured),
    ("hooks.poststop", Honoured),
    ("annotations", Honoured),
    ("linux", Object),
    ("linux.namespaces", Honoured),
    ("linux.uidMappings", Honoured),
    ("linux.gidMappings", Honoured),
    ("linux.devices", Honoured),
    ("linux.netDevices", Refused(NOT_YET)),
    ("linux.cgroupsPath", Honoured),
    ("linux.sysctl", Honoured),
    ("linux.seccomp", Honoured),
    ("linux.rootfsPropagation", Honoured),
    ("linux.maskedPaths", Honoured),
    ("linux.readonlyPaths", Honoured),
    ("linux.mountLabel", Honoured),
    (
        "linux.intelRdt",
        Refused("Intel RDT (resctrl) is not supported"),
    ),
    ("linux.memoryPolicy", Refused(NOT_YET)),
    ("linux.personality", Refused(NOT_YET)),
    (
        "linux.timeOffsets",
        Refused("time namespaces are not supported"),
    ),
    ("linux.resources", Object),
    ("linux.resources.devices", Honoured),
    ("linux.resources.memory", Object),
    ("linux.resources.memory.limit", Honoured),
    ("linux.resources.memory.swap", Honoured),
    ("linux.resources.memory.disableOOMKiller", Honoured),
    ("linux.resources.memory.reservation", Honoured),
    ("linux.resources.memory.kernel", Honoured),
    ("linux.resources.memory.kernelTCP", Honoured),
    ("linux.resources.memory.swappiness", Honoured),
    ("linux.resources.memory.useHierarchy", Refused(NOT_YET)),
    ("linux.resources.memory.checkBeforeUpdate", Refused(NOT_YET)),
    ("linux.resources.cpu", Object),
    ("linux.resources.cpu.shares", Honoured),
    ("linux.resources.cpu.quota", Honoured),
    ("linux.resources.cpu.period", Honoured),
    ("linux.resources.cpu.cpus", Honoured),
    ("linux.resources.cpu.mems", Honoured),
    ("linux.resources.cpu.burst", Refused(NOT_YET)),
    ("linux.resources.cpu.idle", Refused(NOT_YET)),
    ("linux.resources.cpu.realtimeRuntime", Refused(NOT_YET)),
    ("linux.resources.cpu.realtimePeriod", Refused(NOT_YET)),
    ("linux.resources.pids", Object),
    ("linux.resources.pids.limit", Honoured),
    ("linux.resources.blockIO", Object),
    ("linux.resources.blockIO.weight", Honoured),
    ("linux.resources.blockIO.leafWeight", Refused(NOT_YET)),
    ("linux.resources.blockIO.weightDevice", Refused(NOT_YET)),
    (
        "linux.resources.blockIO.throttleReadBpsDevice",
        Refused(NOT_YET),
    ),
    (
        "linux.resources.blockIO.throttleWriteBpsDevice",
        Refused(NOT_YET),
    ),
    (
        "linux.resources.blockIO.throttleReadIOPSDevice",
        Refused(NOT_YET),
    ),
    (
        "linux.resources.blockIO.throttleWriteIOPSDevice",
        Refused(NOT_YET),
    ),
    ("linux.resources.hugepageLimits", Honoured),
    ("linux.resources.network", Refused(NOT_YET)),
    ("linux.resources.rdma", Refused(NOT_YET)),
    ("linux.resources.unified", Refused(NOT_YET)),
    ("solaris", Refused("not a Linux field")),
    ("windows", Refused(WINDOWS)),
    (
        "vm",
        Refused("virtual-machine containers are not supported"),
    ),
    ("zos", Refused("not a Linux field")),
];

fn status(path: &str) -> Option<Status> {
    FIELDS.iter().find(|(p, _)| *p == path).map(|(_, s)| *s)
}

/// Whether a value counts as not set: null, false, 0, "", [] or {}.
pub(super) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Walk the document: the first refused field that is set is an error;
/// fields the spec does not define are collected as warnings when
/// `warnings` is given.
fn walk(v: &Value, prefix: &str, refuse: bool, warnings: &mut Vec<Warning>) -> Result<()> {
    let Some(obj) = v.as_object() else {
        return Ok(());
    };
    for (key, value) in obj {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match status(&path) {
            Some(Object) => walk(value, &path, refuse, warnings)?,
            Some(Honoured) => {}
            Some(Refused(reason)) => {
                if refuse && !is_empty(value) {
                    return Err(Error::Unsupported {
                        field: path,
                        reason: reason.to_string(),
                    });
                }
            }
            None => warnings.push(Warning::UnknownField { field: path }),
        }
    }
    Ok(())
}

/// The fields the spec does not define (kept, not used).
pub(super) fn unknown_fields(doc: &Value) -> Vec<Warning> {
    let mut warnings = Vec::new();
    // Without refusing, the walk cannot fail.
    let _ = walk(doc, "", false, &mut warnings);
    warnings
}

/// Refuse the first field that is set and not honoured.
pub(super) fn refuse_unsupported(doc: &Value) -> Result<()> {
    walk(doc, "", true, &mut Vec::new())
}
