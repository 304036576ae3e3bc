//! Docker's words for a container verb's errors (20.10's CLI and daemon):
//! which verbs say `Error: No such container: X` (those whose CLI looks
//! the container up first) and which `Error response from daemon: ...`,
//! and how a container in the wrong state is refused by each verb.

use dunnage::container::{Error, Status};

use crate::verbs::Fail;

/// The verbs whose docker CLI inspects the container before acting, so
/// that a missing one is the CLI's own `Error: No such container: X`.
const CLIENT_LOOKUP: [&str; 5] = ["rm", "logs", "port", "attach", "exec"];

/// Error `e` of `verb` on the container the user named `key`, worded as
/// docker words it; exit status 1.
pub fn verb_error(verb: &str, key: &str, e: Error) -> Fail {
    let daemon = |m: String| Fail {
        code: 1,
        msg: format!("Error response from daemon: {m}"),
    };
    match e {
        Error::UnknownContainer(_) if CLIENT_LOOKUP.contains(&verb) => Fail {
            code: 1,
            msg: format!("Error: No such container: {key}"),
        },
        Error::UnknownContainer(_) if verb == "kill" => daemon(format!(
            "Cannot kill container: {key}: No such container: {key}"
        )),
        Error::NotRunning(id) if verb == "kill" => daemon(format!(
            "Cannot kill container: {key}: Container {id} is not running"
        )),
        Error::NotRunning(id) if verb == "unpause" => {
            daemon(format!("Container {id} is not paused"))
        }
        // docker names a paused container refusing an exec as given.
        Error::WrongState {
            op: "exec in",
            status: Status::Paused,
            ..
        } => daemon(format!(
            "Container {key} is paused, unpause the container before exec"
        )),
        Error::WrongState { op, id, status } => daemon(wrong_state(op, &id, status)),
        e => daemon(e.to_string()),
    }
}

/// Docker's refusal of `op` on container `id` in `status`.
fn wrong_state(op: &str, id: &str, status: Status) -> String {
    match (op, status) {
        ("remove", Status::Paused) => format!(
            "You cannot remove a paused container {id}. Unpause and then stop the container before attempting removal or force remove"
        ),
        ("remove", _) => format!(
            "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
        ),
        ("pause", Status::Paused) => format!("Container {id} is already paused"),
        ("pause", _) => format!("Container {id} is not running"),
        ("unpause" | "resume", _) => format!("Container {id} is not paused"),
        ("start", Status::Paused) => {
            "cannot start a paused container, try unpause instead".to_string()
        }
        (op, status) => format!("cannot {op} container {id}: it is {status}"),
    }
}

/// A flag that docker's CLI refuses (exit 125), with its pointer to help.
pub fn flag_error(verb: &str, msg: &str) -> Fail {
    Fail {
        code: 125,
        msg: format!("{msg}\nSee 'dunnage {verb} --help'."),
    }
}

/// Too few or too many arguments: docker's CLI says so and exits 1.
pub fn arg_count(verb: &str, msg: &str) -> Fail {
    Fail {
        code: 1,
        msg: format!("{msg}.\nSee 'dunnage {verb} --help'."),
    }
}
